import { Effect } from "effect"
import { entityOf, type Source } from "../sources/SourceCatalog.js"
import { countOf, type StoreContext } from "./StoreContext.js"

const notQueued = ({ id, sql, st }: StoreContext, s: Source) =>
  sql`NOT EXISTS (SELECT 1 FROM ${st.queue} ae_q WHERE ae_q.source = ${s.name} AND ae_q.row_id = t.${id(s)}::text)`

/**
 * Vectors already in a source's own column that autoembed has no record of (the table was filled
 * before it was attached) are taken as the configured model's: their text's hash and full-text
 * vector are recorded, so search finds them without paying for them again. Rows pending in the
 * queue are left to the workers (their text changed after the vector was written).
 */
const adopt = (ctx: StoreContext, s: Source, limit: number) =>
  Effect.gen(function*() {
    const { hasVector, id, modelOf, sql, st, table, text, tsvector } = ctx
    if (s.storage.kind !== "column") return 0
    const rows = yield* sql<{ n: number }>`
      WITH ins AS (
        INSERT INTO ${st.rows} (source, row_id, model, hash, tsv)
        SELECT ${s.name}, x.ae_id, ${modelOf(s)}, md5(coalesce(x.ae_text, '')), ${tsvector(s, sql`x.ae_text`)}
        FROM (
          SELECT t.${id(s)}::text AS ae_id, ${text(s)} AS ae_text FROM ${table(s)} t
          WHERE ${hasVector(s)} AND ${notQueued(ctx, s)}
            AND NOT EXISTS (SELECT 1 FROM ${st.rows} ae_r WHERE ae_r.source = ${s.name} AND ae_r.row_id = t.${
      id(s)
    }::text)
          LIMIT ${limit}
        ) x
        ON CONFLICT DO NOTHING
        RETURNING 1
      ) SELECT count(*)::int AS n FROM ins`
    return countOf(rows)
  })

/**
 * Queues up to `limit` rows with no vector, then up to `limit` with another model's, that nobody
 * queued. Two statements, each on its own access path: the missing ones by one scan of the
 * user's table (7 ms per 100,000 rows here; autoembed may not add a partial index to it), the
 * stale ones from the bookkeeping's (source, model) index as two range scans around the current
 * model (`<>` would read every entry of the source).
 */
const queueMissing = (ctx: StoreContext, s: Source, limit: number) =>
  Effect.gen(function*() {
    const { hasVector, id, modelOf, sql, st, table } = ctx
    const model = modelOf(s)
    const missing = countOf(
      yield* sql<{ n: number }>`
      WITH ins AS (
        INSERT INTO ${st.queue} (source, row_id)
        SELECT ${s.name}, t.${id(s)}::text FROM ${table(s)} t
        WHERE NOT ${hasVector(s)} AND ${notQueued(ctx, s)}
        LIMIT ${limit}
        ON CONFLICT DO NOTHING
        RETURNING 1
      ) SELECT count(*)::int AS n FROM ins`
    )
    const stale = countOf(
      yield* sql<{ n: number }>`
      WITH ins AS (
        INSERT INTO ${st.queue} (source, row_id)
        SELECT ${s.name}, ae_r.row_id FROM ${st.rows} ae_r
        WHERE ae_r.source = ${s.name} AND (ae_r.model < ${model} OR ae_r.model > ${model})
          AND NOT EXISTS (SELECT 1 FROM ${st.queue} ae_q WHERE ae_q.source = ${s.name} AND ae_q.row_id = ae_r.row_id)
        LIMIT ${limit}
        ON CONFLICT DO NOTHING
        RETURNING 1
      ) SELECT count(*)::int AS n FROM ins`
    )
    return missing + stale
  })

/**
 * Finding work nobody queued: rows with no vector or another model's, and vectors that were in
 * place before autoembed was attached. Also requeues failed rows.
 */
export const makeStoreDiscovery = (ctx: StoreContext) => {
  const { named, sql, st, targets } = ctx

  /**
   * Finds rows nobody queued (written with triggers off, restored, or from before autoembed):
   * queues rows with no vector or another model's and, unless `adopt` is false, adopts existing
   * vectors it has no record of; up to `limit` of each per source. Returns how many it adopted and queued.
   */
  const discover = (
    limit: number,
    only?: ReadonlyArray<string>,
    options: { readonly adopt?: boolean } = {}
  ) =>
    Effect.gen(function*() {
      let adopted = 0
      let queued = 0
      for (const s of yield* targets) {
        if (only !== undefined && !only.includes(s.name)) continue
        if (options.adopt !== false) adopted += yield* adopt(ctx, s, limit)
        queued += yield* queueMissing(ctx, s, limit)
      }
      return { adopted, queued }
    }).pipe(named("discover"))

  /** Puts failed rows back in the queue with a fresh attempt count, in every set of these sources (default all). */
  const retryFailed = (only?: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      const keys = (yield* targets).filter((s) => only === undefined || only.includes(entityOf(s))).map((s) => s.name)
      const rows = yield* sql<{ n: number }>`
        WITH r AS (
          UPDATE ${st.queue} SET failed_at = NULL, attempts = 0, next_attempt_at = now(),
            locked_until = NULL, locked_by = NULL, claim_token = NULL
          WHERE failed_at IS NOT NULL AND source = ANY(${keys}::text[])
          RETURNING 1
        ) SELECT count(*)::int AS n FROM r`
      return countOf(rows)
    }).pipe(named("retryFailed"))

  return { discover, retryFailed } as const
}
