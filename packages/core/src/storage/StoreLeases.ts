import type * as Statement from "@effect/sql/Statement"
import { Effect } from "effect"
import type { RowKey } from "../pipeline/PendingSignal.js"
import type { ClaimedItem } from "./EmbeddingStore.js"
import { countOf, type StoreContext } from "./StoreContext.js"

const compareKeys = (a: RowKey, b: RowKey): number =>
  a.source < b.source ? -1 : a.source > b.source ? 1 : a.rowId < b.rowId ? -1 : a.rowId > b.rowId ? 1 : 0

const newToken = () => `${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`

type ClaimRow = { source: string; row_id: string; version: number; attempts: number; claim_token: string }

const toClaimed = (rows: ReadonlyArray<ClaimRow>): Array<ClaimedItem> =>
  rows.map((r) => ({
    source: r.source,
    rowId: r.row_id,
    version: Number(r.version),
    token: r.claim_token,
    attempts: r.attempts
  }))

/** In key order, so that two statements over overlapping rows lock them in the same order (no deadlock). */
const keyArrays = (unordered: ReadonlyArray<ClaimedItem>) => {
  const items = [...unordered].sort(compareKeys)
  return {
    sources: items.map((i) => i.source),
    ids: items.map((i) => i.rowId),
    versions: items.map((i) => i.version),
    tokens: items.map((i) => i.token)
  }
}

/** Leases the rows `selected` picks (locked, skipping rows another claim holds) under one new claim token. */
const lease = ({ leaseSeconds, sql, st }: StoreContext, workerId: string, selected: Statement.Fragment) =>
  Effect.gen(function*() {
    const token = newToken()
    const rows = yield* sql<ClaimRow>`
      WITH c AS (${selected})
      UPDATE ${st.queue} q
      SET locked_until = now() + make_interval(secs => ${leaseSeconds}),
          next_attempt_at = now() + make_interval(secs => ${leaseSeconds}),
          locked_by = ${workerId}, claim_token = ${token}, last_attempt_at = now()
      FROM c WHERE q.source = c.source AND q.row_id = c.row_id
      RETURNING q.source, q.row_id, q.version, q.attempts, q.claim_token`
    return toClaimed(rows)
  })

/**
 * Claims with a lease: a claim moves `next_attempt_at` to the end of the lease, so leased rows
 * leave the ready range and an expired lease becomes ready again by itself.
 */
export const makeStoreClaims = (ctx: StoreContext) => {
  const { named, retried, sources, sql, st } = ctx

  /** Claims up to `limit` ready rows. */
  const claimReady = (limit: number, workerId: string, only: ReadonlyArray<string> = sources.names) =>
    Effect.gen(function*() {
      if (limit <= 0 || only.length === 0) return []
      return yield* lease(
        ctx,
        workerId,
        sql`
        SELECT source, row_id FROM ${st.queue}
        WHERE failed_at IS NULL AND next_attempt_at <= now() AND source = ANY(${only}::text[])
        ORDER BY next_attempt_at
        LIMIT ${limit}
        FOR UPDATE SKIP LOCKED`
      )
    }).pipe(named("claimReady"))

  /** Claims these rows if they are ready (the hook's fresh ids go first). */
  const claimKeys = (keys: ReadonlyArray<RowKey>, workerId: string) =>
    Effect.gen(function*() {
      if (keys.length === 0) return []
      return yield* lease(
        ctx,
        workerId,
        sql`
        SELECT q.source, q.row_id FROM ${st.queue} q
        JOIN unnest(${keys.map((k) => k.source)}::text[], ${keys.map((k) => k.rowId)}::text[]) AS k(source, row_id)
          ON q.source = k.source AND q.row_id = k.row_id
        WHERE q.failed_at IS NULL AND q.next_attempt_at <= now()
        FOR UPDATE OF q SKIP LOCKED`
      )
    }).pipe(named("claimKeys"))

  /**
   * Gives back every lease of `workerId` except the claims it still holds (`held` tokens). A claim
   * whose connection dropped after the UPDATE committed leased rows the worker never heard of;
   * without this they would wait out the whole lease after a database blip.
   */
  const releaseUnheld = (workerId: string, held: ReadonlyArray<string>) =>
    Effect.map(
      sql<{ n: number }>`
        WITH r AS (
          UPDATE ${st.queue} SET locked_until = NULL, locked_by = NULL, claim_token = NULL, next_attempt_at = now()
          WHERE locked_by = ${workerId} AND claim_token IS NOT NULL AND NOT (claim_token = ANY(${held}::text[]))
          RETURNING 1
        ) SELECT count(*)::int AS n FROM r`,
      countOf
    ).pipe(retried("releaseUnheld"))

  return { claimReady, claimKeys, releaseUnheld } as const
}

/**
 * Finishing or giving back claimed rows. Every statement matches the row's version and claim
 * token, so a late worker never touches a row another claim holds now.
 */
export const makeStoreSettlements = ({ leaseSeconds, retried, sql, st }: StoreContext) => {
  /** The queue rows of `items` that the same claim still holds (same version, same token). */
  const heldBy = (items: ReadonlyArray<ClaimedItem>) => {
    const k = keyArrays(items)
    return sql`unnest(${k.sources}::text[], ${k.ids}::text[], ${k.versions}::bigint[], ${k.tokens}::text[])
      AS d(source, row_id, version, token)`
  }
  const sameClaim =
    sql`q.source = d.source AND q.row_id = d.row_id AND q.version = d.version AND q.claim_token = d.token`

  /** Extends the lease of items still held by their claim; returns those (a lost lease drops the item). */
  const renew = (items: ReadonlyArray<ClaimedItem>) =>
    Effect.gen(function*() {
      if (items.length === 0) return []
      const rows = yield* sql<{ source: string; row_id: string }>`
        UPDATE ${st.queue} q
        SET locked_until = now() + make_interval(secs => ${leaseSeconds}),
            next_attempt_at = now() + make_interval(secs => ${leaseSeconds})
        FROM ${heldBy(items)}
        WHERE ${sameClaim}
        RETURNING q.source, q.row_id`
      const held = new Set(rows.map((r) => `${r.source}\u0000${r.row_id}`))
      return items.filter((i) => held.has(`${i.source}\u0000${i.rowId}`))
    }).pipe(retried("renew"))

  /** Removes finished queue rows, only where no newer change re-queued them meanwhile. */
  const complete = (items: ReadonlyArray<ClaimedItem>) =>
    Effect.gen(function*() {
      if (items.length === 0) return
      yield* sql`DELETE FROM ${st.queue} q USING ${heldBy(items)} WHERE ${sameClaim}`
    }).pipe(retried("complete"))

  /** Gives rows back for a later attempt (after `delayMs`), recording the error. */
  const release = (
    items: ReadonlyArray<ClaimedItem>,
    options: { delayMs: number; error?: string; countAttempt: boolean }
  ) =>
    Effect.gen(function*() {
      if (items.length === 0) return
      yield* sql`
        UPDATE ${st.queue} q
        SET locked_until = NULL, locked_by = NULL, claim_token = NULL,
            next_attempt_at = now() + make_interval(secs => ${options.delayMs / 1000}),
            attempts = q.attempts + ${options.countAttempt ? 1 : 0},
            last_error = coalesce(${options.error ?? null}, q.last_error)
        FROM ${heldBy(items)}
        WHERE ${sameClaim}`
    }).pipe(retried("release"))

  /** Marks rows failed with their error; they stay out of the way until `retryFailed`. */
  const fail = (items: ReadonlyArray<ClaimedItem>, error: string) =>
    Effect.gen(function*() {
      if (items.length === 0) return
      yield* sql`
        UPDATE ${st.queue} q
        SET locked_until = NULL, locked_by = NULL, claim_token = NULL, failed_at = now(),
            attempts = q.attempts + 1, last_error = ${error}, last_attempt_at = now()
        FROM ${heldBy(items)}
        WHERE ${sameClaim}`
    }).pipe(retried("fail"))

  /** Queue rows whose source row is gone (deleted while pending): dropped, not retried. */
  const drop = (items: ReadonlyArray<ClaimedItem>) => complete(items)

  return { renew, complete, release, fail, drop } as const
}
