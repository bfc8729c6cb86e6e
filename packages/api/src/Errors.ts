import {
  DatabaseError,
  type Failure,
  HttpStatus,
  isConflict,
  isConnectionLoss,
  isFailure,
  SqlError,
  sqlReason,
  sqlStateOf
} from "@autoembed/core"
import { Cause, Option, ParseResult, Schema } from "effect"

/** Every status the API answers an error with; the OpenAPI document lists the same set. */
export type ErrorStatus = HttpStatus

/** The one error body: `{"error": {"code", "message", "details"}}`, plus the request id to quote in a bug report. */
export interface ErrorBody {
  readonly error: {
    readonly code: string
    readonly message: string
    readonly details: unknown
    readonly request_id: string
  }
}

/**
 * An answer to a failed request; the HTTP layer raises it itself (bad JSON, wrong content type, missing
 * token, ...).
 */
export class ApiError extends Schema.TaggedError<ApiError>()("ApiError", {
  status: HttpStatus,
  code: Schema.String,
  message: Schema.String,
  details: Schema.optionalWith(Schema.Unknown, { default: () => null }),
  headers: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.String }), { default: () => ({}) })
}) {}

/** What a failed request turns into; `log` marks the ones an operator must look at (bugs, outages). */
export const Mapped = Schema.Struct({
  error: Schema.instanceOf(ApiError),
  log: Schema.optional(Schema.Struct({ level: Schema.Literal("warning", "error"), detail: Schema.String }))
})
export interface Mapped extends Schema.Schema.Type<typeof Mapped> {}

/**
 * What a core effect run for a request may fail with: autoembed's errors (each knows its answer),
 * the database's, and input that does not match a schema. `run` accepts no effect that fails otherwise.
 */
export type HandledError = Failure | SqlError | ParseResult.ParseError | ApiError

/** Schema messages quote the offending value; a 1 MB value must not come back whole. */
const MAX_MESSAGE = 300
/** A body of 1,000 bad messages is not answered with 1,000 problems. */
const MAX_PROBLEMS = 20

/** One problem of a validation failure: where (`messages[1].author`, "" for the whole input) and what. */
export interface FieldProblem {
  readonly path: string
  readonly message: string
}

/** A path as a client writes it: `messages[1].author`. */
export const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (out, key) => (typeof key === "number" ? `${out}[${key}]` : out === "" ? String(key) : `${out}.${String(key)}`),
    ""
  )

/**
 * A ParseError as a flat list, instead of the tree dump ("(Struct (Encoded side) <-> ...)"): one
 * problem per path (a union such as null-or-number fails once per member; the first one says it).
 */
const fieldProblems = (e: ParseResult.ParseError): Array<FieldProblem> => {
  const byPath = new Map<string, string>()
  for (const issue of ParseResult.ArrayFormatter.formatErrorSync(e)) {
    const path = formatPath(issue.path)
    if (!byPath.has(path)) byPath.set(path, truncate(issue.message, MAX_MESSAGE))
  }
  return [...byPath].slice(0, MAX_PROBLEMS).map(([path, message]) => ({ path, message }))
}

const truncate = (s: string, max: number) => (s.length <= max ? s : s.slice(0, max) + "…")

const internal = (detail: string): Mapped => ({
  error: new ApiError({
    status: 500,
    code: "internal_error",
    message: "Internal error; the server log has the details under this request id"
  }),
  log: { level: "error", detail }
})

/**
 * A database failure by its SQLSTATE (searched through the driver's causes): a lost race is 409, a
 * refused value 422, an unreachable database 503 (as is any DatabaseError), anything else our bug.
 */
const mapDatabase = (e: SqlError | DatabaseError): Mapped => {
  const state = sqlStateOf(e)
  const detail = `${e.message} ${state === undefined ? "" : `(SQLSTATE ${state}) `}${sqlReason(e)}`.slice(0, 1000)
  // 23505/23503: a concurrent write of the same key, or a row deleted meanwhile (e.g. two ingests of one external_id).
  if (state === "23505" || state === "23503") {
    return {
      error: new ApiError({
        status: 409,
        code: "conflict",
        message: "A concurrent write changed the same rows; retry the request"
      }),
      log: { level: "warning", detail }
    }
  }
  // Deadlock or serialization failure that outlasted core's retries: a race with another client, not an outage.
  if (isConflict(e)) {
    return {
      error: new ApiError({
        status: 409,
        code: "write_conflict",
        message: "Concurrent requests kept writing the same rows; retry the request",
        details: { sqlstate: state },
        headers: { "retry-after": "1" }
      }),
      log: { level: "warning", detail }
    }
  }
  // Class 22 (data exception): a value the schema let through but PostgreSQL refuses, such as a NUL character in text.
  if (state !== undefined && state.startsWith("22")) {
    return {
      error: new ApiError({
        status: 422,
        code: "invalid_value",
        message: "The database refused a value in the request (for example a NUL character in text)",
        details: { sqlstate: state }
      }),
      log: { level: "warning", detail }
    }
  }
  // Connection lost, too many connections, shutting down or recovering: the database, not the request.
  if (isConnectionLoss(e) || (state !== undefined && /^(53|57)/.test(state)) || e instanceof DatabaseError) {
    return {
      error: new ApiError({
        status: 503,
        code: "database_unavailable",
        message: "The database is unavailable; retry later",
        details: state === undefined ? null : { sqlstate: state },
        headers: { "retry-after": "5" }
      }),
      log: { level: "error", detail }
    }
  }
  return internal(detail)
}

/** An autoembed error's own answer; without one (start-up errors, say), a logged 500. */
const mapFailure = (e: Failure): Mapped => {
  if (e.http === undefined) {
    return internal(e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ""}` : e.message)
  }
  const { code, details, headers, log, message, status } = e.http
  return {
    error: new ApiError({ status, code, message, details: details ?? null, headers: { ...headers } }),
    ...(log === undefined ? {} : { log: { level: log, detail: e.message } })
  }
}

/**
 * The single mapping from failures to HTTP responses, by type. Messages of domain errors are written
 * for users; infrastructure errors (SQL, provider internals) are logged, never echoed. Anything else
 * that reaches here (a thrown bug) is a logged 500.
 */
export const mapError = (e: unknown): Mapped => {
  if (e instanceof ApiError) return { error: e }
  if (ParseResult.isParseError(e)) {
    const problems = fieldProblems(e)
    const first = problems[0]
    const message = first === undefined
      ? "The request does not match the schema"
      : first.path === "" || first.message.startsWith(first.path)
      ? first.message
      : `${first.path}: ${first.message}`
    return {
      error: new ApiError({
        status: 422,
        code: "validation_failed",
        message: truncate(message, 500),
        details: problems
      })
    }
  }
  if (e instanceof SqlError || e instanceof DatabaseError) return mapDatabase(e)
  if (isFailure(e)) return mapFailure(e)
  return internal(e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ""}` : String(e))
}

/** A failed Effect's cause: its first expected error, else (defects, interruption) a bug. */
export const mapCause = (cause: Cause.Cause<HandledError>): Mapped => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) return mapError(failure.value)
  if (Cause.isInterruptedOnly(cause)) {
    return {
      error: new ApiError({
        status: 503,
        code: "shutting_down",
        message: "The server is shutting down; retry on another instance",
        headers: { "retry-after": "5" }
      })
    }
  }
  return internal(Cause.pretty(cause))
}

export const errorBody = (error: ApiError, requestId: string): ErrorBody => ({
  error: { code: error.code, message: error.message, details: error.details ?? null, request_id: requestId }
})
