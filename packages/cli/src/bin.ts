#!/usr/bin/env node
import { startupErrorMessage } from "@autoembed/core"
import { Command } from "@effect/cli"
import { NodeContext } from "@effect/platform-node"
import { Cause, Effect, Exit, Fiber, Logger, LogLevel } from "effect"
import { CliExit, root } from "./Cli.js"

/** Tags of errors that are configuration or connectivity problems: one line, exit code 2. */
const CONFIG_ERRORS = new Set(["ConfigurationError", "DatabaseError", "DimensionMismatch", "ProviderStartupError", "SourceError"])

const cli = Command.run(root, { name: "autoembed", version: "0.1.0" })

const program = cli(process.argv).pipe(
  Effect.provide(NodeContext.layer),
  Logger.withMinimumLogLevel(process.env.AUTOEMBED_LOG_LEVEL === "debug" ? LogLevel.Debug : LogLevel.Warning)
)

let interrupted = false
const controller = Effect.runFork(program)
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    interrupted = true
    // Interrupting runs the finalizers: claimed rows go back to the queue at once.
    Effect.runFork(Fiber.interrupt(controller))
  })
}

controller.addObserver((exit) => {
  if (Exit.isSuccess(exit)) process.exit(0)
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
