#!/usr/bin/env node
import { HARD_EXIT_GRACE_MS, processStop } from "@autoembed/api/lifecycle"
import { drainTimeoutSetting, EXIT_CODES, exitCodeOf, startupErrorMessage } from "@autoembed/core"
import { Command, ValidationError } from "@effect/cli"
import { NodeContext } from "@effect/platform-node"
import { Cause, Effect, Either, Exit, Fiber, Logger, LogLevel, Option } from "effect"
import { CliExit, root } from "./Cli.js"

const cli = Command.run(root, { name: "autoembed", version: "0.1.0" })

const program = cli(process.argv).pipe(
  Effect.provide(NodeContext.layer),
  Logger.withMinimumLogLevel(process.env.AUTOEMBED_LOG_LEVEL === "debug" ? LogLevel.Debug : LogLevel.Warning)
)

// Installed for the life of the process: a second Ctrl-C or SIGTERM during the drain is logged and
// ignored instead of killing the process with rows still claimed. A bad value is reported by the command.
const drainMs = Either.getOrElse(Effect.runSync(Effect.either(drainTimeoutSetting)), () => 15_000)
const stop = processStop()
stop.install({
  hardExitAfterMs: drainMs + HARD_EXIT_GRACE_MS,
  log: (message) => process.stderr.write(`autoembed: ${message}\n`)
})

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
    process.exit(EXIT_CODES.interrupted)
  }
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure)) {
    const error = failure.value
    // @effect/cli has already printed its own message for a usage mistake.
    if (ValidationError.isValidationError(error)) process.exit(EXIT_CODES.failed)
    // The exit code from core's one table, as the server's: a command's own CliExit carries its code.
    const code = exitCodeOf(error)
    // A command's message or a configuration error: one line per problem, all worth reading; else the first line.
    const message = error instanceof CliExit
      ? error.message
      : code === EXIT_CODES.configuration
      ? startupErrorMessage(error)
      : String((error as { message?: unknown })?.message ?? "").split("\n")[0]
    if (message !== "") process.stderr.write(`${message}\n`)
    process.exit(code)
  }
  process.stderr.write(`autoembed: unexpected error: ${Cause.pretty(exit.cause).split("\n")[0]}\n`)
  process.exit(EXIT_CODES.failed)
})
