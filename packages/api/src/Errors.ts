import { isConflict, isConnectionLoss, sqlReason, sqlStateOf } from "@autoembed/core"
import { Cause, Option, ParseResult } from "effect"

/** Every status the API answers an error with; the OpenAPI document lists the same set. */
export type ErrorStatus = 400 | 401 | 404 | 405 | 409 | 413 | 415 | 422 | 429 | 500 | 503

/** The one error body: `{"error": {"code", "message", "details"}}`, plus the request id to quote in a bug report. */
export interface ErrorBody {
  readonly error: {
    readonly code: string
    readonly message: string
    readonly details: unknown
    readonly request_id: string
  }
}

/** An error the HTTP layer raises itself (bad JSON, wrong content type, missing token, ...). */
export class ApiError extends Error {
  constructor(
    readonly status: ErrorStatus,
    readonly code: string,
    message: string,
    readonly details: unknown = null,
    readonly headers: Record<string, string> = {}
  ) {
    super(message)
  }
}

/** What a failed request turns into; `log` marks the ones an operator must look at (bugs, outages). */
export interface Mapped {
  readonly error: ApiError
  readonly log?: { readonly level: "warning" | "error"; readonly detail: string }
}

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
  error: new ApiError(500, "internal_error", "Internal error; the server log has the details under this request id"),
  log: { level: "error", detail }
})

/**
 * The single mapping from failures to HTTP responses. Messages of domain errors are written for
 * users; infrastructure errors (SQL, provider internals) are logged, never echoed.
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
    return { error: new ApiError(422, "validation_failed", truncate(message, 500), problems) }
  }
  const tagged = e as { _tag?: unknown; message?: unknown; details?: unknown }
  const message = typeof tagged?.message === "string" ? tagged.message : ""
  switch (tagged?._tag) {
    case "ExtractionInvalid":
      return { error: new ApiError(422, "unknown_reference", message, tagged.details ?? null) }
    case "BackfillInvalid":
    case "SearchInvalid":
      return { error: new ApiError(422, "invalid_request", message) }
    case "BackfillNotFound":
      return { error: new ApiError(404, "not_found", message, { id: (e as { id: string }).id }) }
    case "BuiltinDisabled":
      return { error: new ApiError(404, "builtin_disabled", message) }
    case "ProviderError": {
      const p = e as { reason: string; retryAfterMs?: number; provider: string }
      if (p.reason === "RateLimited") {
        const seconds = Math.max(1, Math.ceil((p.retryAfterMs ?? 1000) / 1000))
        return {
          error: new ApiError(429, "provider_rate_limited", "The embedding provider is rate limiting; retry later", {
            retry_after_seconds: seconds
          }, { "retry-after": String(seconds) }),
          log: { level: "warning", detail: message }
        }
      }
      return {
        error: new ApiError(
          503,
          "provider_unavailable",
          `The embedding provider (${p.provider}) cannot embed the query right now`,
          { reason: p.reason },
          { "retry-after": "5" }
        ),
        log: { level: "warning", detail: message }
      }
    }
    case "SqlError":
    case "DatabaseError": {
      const state = sqlStateOf(e)
      const detail = `${message} ${state === undefined ? "" : `(SQLSTATE ${state}) `}${sqlReason(e)}`.slice(0, 1000)
      // 23505/23503: a concurrent write of the same key, or a row deleted meanwhile (e.g. two ingests of one external_id).
      if (state === "23505" || state === "23503") {
        return {
          error: new ApiError(409, "conflict", "A concurrent write changed the same rows; retry the request"),
          log: { level: "warning", detail }
        }
      }
      // Deadlock or serialization failure that outlasted core's retries: a race with another client, not an outage.
      if (isConflict(e)) {
        return {
          error: new ApiError(
            409,
            "write_conflict",
            "Concurrent requests kept writing the same rows; retry the request",
            { sqlstate: state },
            { "retry-after": "1" }
          ),
          log: { level: "warning", detail }
        }
      }
      // Class 22 (data exception): a value the schema let through but PostgreSQL refuses, such as a NUL character in text.
      if (state !== undefined && state.startsWith("22")) {
        return {
          error: new ApiError(
            422,
            "invalid_value",
            "The database refused a value in the request (for example a NUL character in text)",
            { sqlstate: state }
          ),
          log: { level: "warning", detail }
        }
      }
      // Connection lost, too many connections, shutting down or recovering: the database, not the request.
      if (isConnectionLoss(e) || (state !== undefined && /^(53|57)/.test(state)) || tagged._tag === "DatabaseError") {
        return {
          error: new ApiError(
            503,
            "database_unavailable",
            "The database is unavailable; retry later",
            state === undefined ? null : { sqlstate: state },
            { "retry-after": "5" }
          ),
          log: { level: "error", detail }
        }
      }
      return internal(detail)
    }
  }
  return internal(e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ""}` : String(e))
}

/** A failed Effect's cause: its first expected error, else (defects, interruption) a bug. */
export const mapCause = (cause: Cause.Cause<unknown>): Mapped => {
  const failure = Cause.failureOption(cause)
  if (Option.isSome(failure)) return mapError(failure.value)
  if (Cause.isInterruptedOnly(cause)) {
    return {
      error: new ApiError(503, "shutting_down", "The server is shutting down; retry on another instance", null, {
        "retry-after": "5"
      })
    }
  }
  return internal(Cause.pretty(cause))
}

export const errorBody = (error: ApiError, requestId: string): ErrorBody => ({
  error: { code: error.code, message: error.message, details: error.details ?? null, request_id: requestId }
})
