import { SqlError } from "@effect/sql/SqlError"
import { Duration, Effect, Schedule } from "effect"

/** @effect/sql's error, for `instanceof` checks in packages that do not depend on @effect/sql themselves. */
export { SqlError }

/**
 * What a failed statement means, read from the driver's error: its SQLSTATE, whether the database
 * went away (retry once it answers), whether a concurrent transaction conflicted (retry at once).
 * One place for the classification the workers' retries, the ingest retries and the API's error
 * mapping share.
 */

/** One link of a cause chain: any object; drivers and Node set `code` (SQLSTATE, ECONNREFUSED) and `message`. */
export interface CauseLink {
  readonly code?: unknown
  readonly message?: unknown
  readonly errors?: unknown
}

/**
 * An error and its causes, outermost first (drivers wrap a few times, never more than six). The one
 * place that follows `cause`: everything else reads typed fields, or searches this chain.
 */
export const causeChain = (e: unknown): Array<CauseLink> => {
  const chain: Array<CauseLink> = []
  for (let c: any = e; c && typeof c === "object" && chain.length < 6; c = c.cause) chain.push(c)
  return chain
}

const SQL_STATE = /^[0-9A-Z]{5}$/

/** The SQLSTATE of a database error, searched through its causes (pg and PGlite both set `code`). */
export const sqlStateOf = (e: unknown): string | undefined =>
  causeChain(e).map((c) => c.code).find((code): code is string => typeof code === "string" && SQL_STATE.test(code))

/** Network-level failures reaching the database carry no SQLSTATE, only a socket error code or pg's words. */
const SOCKET_CODES = /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH)$/
const SOCKET_MESSAGES =
  /connection (terminated|refused|closed)|timeout exceeded when trying to connect|Client has encountered a connection error|not queryable/i

/**
 * The database is unreachable or shutting down: class 08 (connection), 57P01-57P03 (shutdown,
 * crash recovery), 53300 (too many connections), or a socket error without a SQLSTATE.
 */
export const isConnectionLoss = (e: unknown): boolean => {
  const state = sqlStateOf(e)
  if (state !== undefined) return state.startsWith("08") || /^57P0[1-3]$/.test(state) || state === "53300"
  return causeChain(e).some((c) =>
    (typeof c.code === "string" && SOCKET_CODES.test(c.code)) ||
    (typeof c.message === "string" && SOCKET_MESSAGES.test(c.message))
  )
}

/** A serialization failure or a deadlock: the transaction lost a race and can simply run again. */
export const isConflict = (e: unknown): boolean => {
  const state = sqlStateOf(e)
  return state === "40001" || state === "40P01"
}

/**
 * The database's own words, not the client's "Failed to execute statement": the innermost message
 * with its SQLSTATE (or socket error code), on one line.
 */
export const sqlReason = (e: unknown): string => {
  const chain = causeChain(e)
  const state = sqlStateOf(e)
  const holder = chain.find((c) => typeof c.code === "string" && typeof c.message === "string")
  const inner = holder ?? chain.at(-1)
  const words =
    (typeof inner?.message === "string" && inner.message !== "" ? inner.message : String(inner ?? e)).split("\n")[0]
  const code = state !== undefined ? `SQLSTATE ${state}` : typeof holder?.code === "string" ? holder.code : undefined
  const reason = code === undefined ? words : `${words} (${code})`
  return reason.length > 300 ? reason.slice(0, 300) + "…" : reason
}

/**
 * Names a failed statement: the SqlError keeps its cause (and so its SQLSTATE) but its message
 * says which statement failed and why, for example
 * `EmbeddingStore.writeVectors: terminating connection due to administrator command (SQLSTATE 57P01)`.
 */
export const nameFailure = (statement: string) => (e: SqlError): SqlError =>
  new SqlError({ message: `${statement}: ${sqlReason(e)}`, cause: e })

/**
 * How a worker's statement waits out a database outage: quick at first (a dropped connection is
 * usually replaced in milliseconds), then every 2 s, for at most `within`. Work done before the
 * outage (claimed rows, vectors already paid for) is kept instead of being left to the lease.
 */
export const outageSchedule = (within: Duration.DurationInput) =>
  Schedule.exponential(Duration.millis(100), 2).pipe(
    Schedule.union(Schedule.spaced(Duration.seconds(2))),
    Schedule.jittered,
    Schedule.upTo(within)
  )

/** How a lost race (deadlock, serialization failure) runs again: a few quick jittered tries. */
export const conflictSchedule = Schedule.exponential(Duration.millis(10), 2).pipe(
  Schedule.jittered,
  Schedule.intersect(Schedule.recurs(6))
)

/**
 * A statement that survives a blip: retried through an outage (up to `within`) and after a lost
 * race, then failed with its name and SQLSTATE in the message. Only safe for idempotent work.
 */
export const resilient =
  (statement: string, within: Duration.DurationInput) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    self.pipe(
      Effect.retry({ schedule: outageSchedule(within), while: isConnectionLoss }),
      Effect.retry({ schedule: conflictSchedule, while: isConflict }),
      Effect.mapError((e) => (e instanceof SqlError ? (nameFailure(statement)(e) as E) : e)),
      Effect.withSpan(statement)
    )
