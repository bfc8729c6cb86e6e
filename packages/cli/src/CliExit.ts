import { EXIT_CODES, ExitCode, type Failure, FailureTypeId } from "@autoembed/core"
import { Schema } from "effect"

/** A command's own failure: its stderr message and exit code (1: rows failed or a usage mistake, 2: configuration). */
export class CliExit extends Schema.TaggedError<CliExit>()("CliExit", {
  exitCode: ExitCode,
  message: Schema.String
}) implements Failure {
  get [FailureTypeId](): FailureTypeId {
    return FailureTypeId
  }
}

/** A usage mistake: one line on stderr, exit code 1. */
export const usage = (message: string) => new CliExit({ exitCode: EXIT_CODES.failed, message })
