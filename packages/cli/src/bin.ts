#!/usr/bin/env node
import { HARD_EXIT_GRACE_MS, processStop } from "@autoembed/api/lifecycle"
import { drainTimeoutSetting, startupErrorMessage } from "@autoembed/core"
import { Command } from "@effect/cli"
import { NodeContext } from "@effect/platform-node"
import { Cause, Effect, Either, Exit, Fiber, Logger, LogLevel } from "effect"
import { CliExit, root } from "./Cli.js"

/** Tags of errors that are configuration or connectivity problems: one line, exit code 2. */
const CONFIG_ERRORS = new Set(["ConfigurationError", "DatabaseError", "DimensionMismatch", "ProviderStartupError", "SourceError"])

const cli = Command.run(root, { name: "autoembed", version: "0.1.0" })

const program = cli(process.argv).pipe(
  Effect.provide(NodeContext.layer),
  Logger.withMinimumLogLevel(process.env.AUTOEMBED_LOG_LEVEL === "debug" ? LogLevel.Debug : LogLevel.Warning)
)

// Installed for the life of the process: a second Ctrl-C or SIGTERM during the drain is logged and
// ignored instead of killing the process with rows still claimed. A bad value is reported by the command.
const drainMs = Either.getOrElse(Effect.runSync(Effect.either(drainTimeoutSetting)), () => 15_000)
const stop = processStop()
stop.install({ hardExitAfterMs: drainMs + HARD_EXIT_GRACE_MS, log: (message) => process.stderr.write(`autoembed: ${message}\n`) })

let interrupted = false
const controller = Effect.runFork(program)
// `worker` and `serve` wait for the stop request and end normally; any other command is interrupted.
stop.whenUnhandled(() => {
  interrupted = true
  // Interrupting runs the finalizers: claimed rows go back to the queue at once.
  Effect.runFork(Fiber.interrupt(controller))
})

controller.addObserver((exit) => {
  // `serve` sets exitCode 1 when its shutdown failed.
  if (Exit.isSuccess(exit)) process.exit(Number(process.exitCode ?? 0))
  if (interrupted || Cause.isInterruptedOnly(exit.cause)) {
    process.stderr.write("Interrupted; claimed rows were released and a new run resumes where this one stopped.\n")
    process.exit(130)
  }
  const failure = Cause.failureOption(exit.cause)
  if (failure._tag === "Some") {
    const error = failure.value as any
    if (error instanceof CliExit) {
      process.stderr.write(`${error.message}\n`)
      process.exit(error.code)
    }
    // @effect/cli has already printed its own message for a usage mistake.
    if (error && typeof error === "object" && "_tag" in error && String(error._tag).includes("ValidationError") === false && !CONFIG_ERRORS.has(error._tag) && error._tag in { MissingValue: 1, InvalidValue: 1, CommandMismatch: 1, CorrectedFlag: 1, MultipleValuesDetected: 1, NoBuiltInMatch: 1, MissingFlag: 1, MissingSubcommand: 1, InvalidArgument: 1, UnclusteredFlag: 1, HelpRequested: 1 }) {
      process.exit(1)
    }
    if (error && typeof error === "object" && CONFIG_ERRORS.has(error._tag)) {
      process.stderr.write(`${startupErrorMessage(error)}\n`)
      process.exit(2)
    }
    if (error && typeof error === "object" && typeof error.message === "string") {
      process.stderr.write(`${error.message.split("\n")[0]}\n`)
      process.exit(1)
    }
    process.exit(1)
  }
  process.stderr.write(`autoembed: unexpected error: ${Cause.pretty(exit.cause).split("\n")[0]}\n`)
  process.exit(1)
})
