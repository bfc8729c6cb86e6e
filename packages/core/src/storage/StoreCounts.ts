import type { Fragment } from "@effect/sql/Statement"
import { Effect } from "effect"
import type { Source } from "../sources/Sources.js"
import type { SourceCounts } from "./EmbeddingStore.js"
import { countOf, type StoreContext } from "./StoreContext.js"

interface CountsRow {
  total: number | null
  missing: number
  stale_model: number
  stale_content: number
  failed: number
  pending: number
  in_flight: number
  oldest: number | null
}

/** What status and dry runs show: exact per-source counts, and the last errors. */
export const makeStoreCounts = (ctx: StoreContext) => {
  const { hasVector, id, idType, modelOf, named, sources, sql, st, table } = ctx

  const countsOf = (s: Source, withTotal: boolean) =>
    Effect.gen(function*() {
      const model = modelOf(s)
      const notFailed = (row: Fragment) =>
        sql`NOT EXISTS (SELECT 1 FROM ${st.queue} ae_q
          WHERE ae_q.source = ${s.name} AND ae_q.row_id = ${row} AND ae_q.failed_at IS NOT NULL)`
      const [r] = yield* sql<CountsRow>`
        SELECT
          ${withTotal ? sql`(SELECT count(*) FROM ${table(s)})::int` : sql`NULL::int`} AS total,
          (SELECT count(*) FROM ${table(s)} t WHERE NOT ${hasVector(s)} AND ${
        notFailed(sql`t.${id(s)}::text`)
      })::int AS missing,
          (SELECT count(*) FROM ${st.rows} ae_r JOIN ${table(s)} t ON t.${id(s)} = ae_r.row_id::${idType(s)}
             WHERE ae_r.source = ${s.name} AND ae_r.model <> ${model} AND ${hasVector(s)} AND ${
        notFailed(sql`ae_r.row_id`)
      })::int AS stale_model,
          (SELECT count(*) FROM ${st.queue} ae_q
             JOIN ${st.rows} ae_r ON ae_r.source = ae_q.source AND ae_r.row_id = ae_q.row_id
             WHERE ae_q.source = ${s.name} AND ae_q.failed_at IS NULL AND ae_r.model = ${model})::int AS stale_content,
          (SELECT count(*) FROM ${st.queue} WHERE source = ${s.name} AND failed_at IS NOT NULL)::int AS failed,
          (SELECT count(*) FROM ${st.queue} WHERE source = ${s.name} AND failed_at IS NULL)::int AS pending,
          (SELECT count(*) FROM ${st.queue}
             WHERE source = ${s.name} AND failed_at IS NULL AND locked_until > now())::int AS in_flight,
          (SELECT extract(epoch FROM now() - min(enqueued_at))::float8 FROM ${st.queue}
             WHERE source = ${s.name} AND failed_at IS NULL) AS oldest`
      const total = r.total ?? 0
      const c: SourceCounts = {
        total,
        embedded: withTotal ? Math.max(0, total - r.missing - r.failed) : 0,
        missing: r.missing,
        stale: r.stale_model + r.stale_content,
        failed: r.failed,
        pending: r.pending,
        inFlight: r.in_flight,
        oldestPendingSeconds: r.oldest === null ? null : Math.round(r.oldest)
      }
      return [s.name, c] as const
    })

  /**
   * Exact counts per source object (by default the configured sets; pass a set's object for its
   * own), from the user's table, autoembed's bookkeeping and the (small) queue table.
   */
  const counts = (options: { withTotal: boolean } = { withTotal: true }, of: ReadonlyArray<Source> = sources.all) =>
    Effect.forEach(of, (s) => countsOf(s, options.withTotal)).pipe(
      Effect.map((entries) => Object.fromEntries(entries) as Record<string, SourceCounts>),
      named("counts")
    )

  /** The last errors recorded on queue rows, newest first. */
  const recentErrors = (limit = 5) =>
    sql<{ source: string; row_id: string; error: string; at: Date; attempts: number; failed: boolean }>`
      SELECT source, row_id, last_error AS error, last_attempt_at AS at, attempts, (failed_at IS NOT NULL) AS failed
      FROM ${st.queue} WHERE last_error IS NOT NULL AND last_attempt_at IS NOT NULL
      ORDER BY last_attempt_at DESC LIMIT ${limit}`

  /** Queue rows of these sources waiting or in flight (not failed). */
  const pendingCount = (only: ReadonlyArray<string>) =>
    Effect.map(
      sql<
        { n: number }
      >`SELECT count(*)::int AS n FROM ${st.queue} WHERE failed_at IS NULL AND source = ANY(${only}::text[])`,
      countOf
    ).pipe(named("pendingCount"))

  return { counts, pendingCount, recentErrors } as const
}
