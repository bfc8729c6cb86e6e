import { Predicate, Schema } from "effect"

/**
 * What every autoembed error says about itself, so that the API and the processes decide by type,
 * never by tag strings: how a process that stops on it exits, and (for errors a client can cause)
 * how the API answers it. One table of exit codes for the server, the workers and the CLI.
 */

/**
 * The exit codes of every autoembed process (server, worker, CLI): 2 for what the user fixes in
 * settings or the environment (a setting, the configuration file, a declared source, the database's
 * address or rights, the provider, the dimensions), 1 for anything else, 130 when interrupted.
 */
export const EXIT_CODES = { ok: 0, failed: 1, configuration: 2, interrupted: 130 } as const

export const ExitCode = Schema.Literal(
  EXIT_CODES.ok,
  EXIT_CODES.failed,
  EXIT_CODES.configuration,
  EXIT_CODES.interrupted
)
export type ExitCode = typeof ExitCode.Type

/** Every status the API answers an error with; the OpenAPI document lists the same set. */
export const HttpStatus = Schema.Literal(400, 401, 404, 405, 409, 413, 415, 422, 429, 500, 503)
export type HttpStatus = typeof HttpStatus.Type

/** How the API answers an error. `message` is written for the client; `log` marks what an operator must see. */
export interface HttpAnswer {
  readonly status: HttpStatus
  /** Stable, machine-readable: clients switch on it. */
  readonly code: string
  readonly message: string
  readonly details?: unknown
  readonly headers?: Readonly<Record<string, string>>
  /** Logged with the error's own message (which may name internals the answer does not). */
  readonly log?: "warning" | "error"
}

export const FailureTypeId: unique symbol = Symbol.for("@autoembed/core/Failure")
export type FailureTypeId = typeof FailureTypeId

/** An autoembed error: its exit code, and its HTTP answer when a request can cause it (else a logged 500). */
export interface Failure {
  readonly [FailureTypeId]: FailureTypeId
  readonly message: string
  readonly exitCode: ExitCode
  readonly http?: HttpAnswer | undefined
}

export const isFailure = (u: unknown): u is Failure => Predicate.hasProperty(u, FailureTypeId)

/** The exit code of a process that stops on `error`: the error's own, else 1. */
export const exitCodeOf = (error: unknown): ExitCode => (isFailure(error) ? error.exitCode : EXIT_CODES.failed)
