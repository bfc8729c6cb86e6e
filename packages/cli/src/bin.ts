#!/usr/bin/env node
import { HARD_EXIT_GRACE_MS, processStop } from "@autoembed/api/lifecycle"
import { drainTimeoutSetting, EXIT_CODES, exitCodeOf, startupErrorMessage } from "@autoembed/core"
import { Command, ValidationError } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Either, Exit, Logger, LogLevel, Option } from "effect"
import { CliExit, root } from "./Cli.js"

const cli = Command.run(root, { name: "autoembed", version: "0.1.0" })

const program = cli(process.argv).pipe(
  Effect.provide(NodeContext.layer),
  Logger.withMinimumLogLevel(process.env.AUTOEMBED_LOG_LEVEL === "debug" ? LogLevel.Debug : LogLevel.Warning)
)

// Installed before runMain's own handlers, so it hears each signal first, and for the life of the
// process: runMain's handlers interrupt the program on the first SIGTERM or SIGINT and are then
// removed, and a second signal during the drain is logged and ignored here instead of killing the
// process with rows still claimed. A bad value is reported by the command.
const drainMs = Either.getOrElse(Effect.runSync(Effect.either(drainTimeoutSetting)), () => 15_000)
const stop = processStop()
stop.install({
  hardExitAfterMs: drainMs + HARD_EXIT_GRACE_MS,
  log: (message) => process.stderr.write(`autoembed: ${message}\n`)
})

// `worker` and `serve` wait for the stop request: interrupted by runMain on that same signal, they
// drain as their scopes close and end the process with 0. Any other command is only interrupted
// (its finalizers give the claimed rows back at once) and ends it with 130.
let interrupted = false
stop.whenUnhandled(() => {
  interrupted = true
})

const write = (line: string) => {
  if (line !== "") process.stderr.write(`${line}\n`)
}

/** A failure's message: a command's own or a configuration error in full (a line per problem), else its first line. */
const failureMessage = (error: unknown, code: number): string =>
  error instanceof CliExit
    ? error.message
    : code === EXIT_CODES.configuration
    ? startupErrorMessage(error)
    : String((error as { message?: unknown })?.message ?? "").split("\n")[0]

/** The exit code from core's one table (as the server's), after printing the program's one line about it. */
const exitCode = (exit: Exit.Exit<unknown, unknown>): number => {
  if (Exit.isSuccess(exit)) return EXIT_CODES.ok
  // (An interrupt that no signal explains is reported the same way.)
  if (interrupted || (Cause.isInterruptedOnly(exit.cause) && stop.reason() === undefined)) {
    write("Interrupted; claimed rows were released and a new run resumes where this one stopped.")
    return EXIT_CODES.interrupted
  }
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure)) {
    // @effect/cli has already printed its own message for a usage mistake.
    if (ValidationError.isValidationError(failure.value)) return EXIT_CODES.failed
    const code = exitCodeOf(failure.value)
    write(failureMessage(failure.value, code))
    return code
  }
  // A stop request that `worker` or `serve` waited for, and runMain's interrupt on the same signal.
  if (Cause.isInterruptedOnly(exit.cause)) return EXIT_CODES.ok
  write(`autoembed: unexpected error: ${Cause.pretty(exit.cause).split("\n")[0]}`)
  return EXIT_CODES.failed
}

// runMain's `onExit` ends the process at once after a signal or with a non-zero code; a command that
// ended normally has closed its scopes (database, provider clients), so the process ends on its own.
NodeRuntime.runMain(program, {
  // Errors are reported by `exitCode`, one line each; logs keep Effect's default format, as before.
  disableErrorReporting: true,
  disablePrettyLogger: true,
  teardown: (exit, onExit) => onExit(exitCode(exit))
})
