import type { Fragment } from "@effect/sql/Statement"
import { Effect } from "effect"
import type { Source } from "../sources/Sources.js"
import type { LoadedRow } from "./EmbeddingStore.js"
import type { StoreContext } from "./StoreContext.js"
import { vectorArrayBinary, vectorLiteral } from "./VectorEncoding.js"

/** A vector to write, with the hash of the text it was embedded from. */
export interface VectorWrite {
  readonly rowId: string
  readonly hash: string
  readonly vector: ReadonlyArray<number>
}

/**
 * Reading claimed rows' texts and writing their vectors: one batched, hash-guarded statement per
 * batch that also records each row's model, hash and full-text vector.
 */
export const makeStoreVectors = (ctx: StoreContext) => {
  const { database, hash, hasVector, id, idArray, idType, modelOf, retried, sql, st, table, text, tsvector } = ctx

  // The `vector` type's oid, looked up on the first write (the extension may be created after
  // this service), for the binary vector[] parameter on PostgreSQL.
  let vectorOid: number | undefined
  const vectorsParam = (vectors: ReadonlyArray<ReadonlyArray<number>>) =>
    Effect.gen(function*() {
      if (database.kind === "pglite") return sql`${vectors.map(vectorLiteral)}::text[]::vector[]`
      if (vectorOid === undefined) {
        const rows = yield* sql<{ oid: number | null }>`SELECT to_regtype('vector')::oid::int8 AS oid`
        if (rows[0]?.oid == null) {
          return yield* Effect.dieMessage("The vector type is missing: run the migrations (pnpm cli migrate)")
        }
        vectorOid = Number(rows[0].oid)
      }
      return sql`${vectorArrayBinary(vectorOid, vectors)}::vector[]`
    })

  /**
   * Current text of these rows; rows that no longer exist are absent. The bookkeeping is also
   * matched by `row_id = ANY(ids)` so its scan is a primary-key lookup of the batch's rows whatever
   * the statistics say: for a new embedding set they were gathered before its key existed, and the
   * planner, expecting one row under that key, read every row the set had so far (a nested loop
   * over a materialised scan by source) for every batch: 4 ms a batch became seconds half-way
   * through a 100,000-row set. A caller's id in another spelling than the queue's (`t.id::text`)
   * only loses `upToDate`, so the row is embedded again.
   */
  const loadTexts = (source: Source, rowIds: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      if (rowIds.length === 0) return []
      const rows = yield* sql<{ row_id: string; text: string | null; hash: string; up_to_date: boolean }>`
        SELECT x.ae_id AS row_id, x.ae_text AS text, md5(coalesce(x.ae_text, '')) AS hash,
               (x.ae_has_vector AND s.model IS NOT DISTINCT FROM ${modelOf(source)}
                AND s.hash = md5(coalesce(x.ae_text, ''))) AS up_to_date
        FROM (
          SELECT t.${id(source)}::text AS ae_id, ${text(source)} AS ae_text, ${hasVector(source)} AS ae_has_vector
          FROM ${table(source)} t WHERE t.${id(source)} = ANY(${idArray(source, rowIds)})
        ) x
        LEFT JOIN ${st.rows} s ON s.source = ${source.name} AND s.row_id = x.ae_id
          AND s.row_id = ANY(${rowIds}::text[])`
      return rows.map((r): LoadedRow => ({
        rowId: r.row_id,
        text: r.text ?? "",
        hash: r.hash,
        upToDate: r.up_to_date
      }))
    }).pipe(retried("loadTexts"))

  /**
   * Records what the written rows were embedded from, in the same statement as the vectors, and
   * when their change was queued (the queue row is still there: completion comes after): freshness.
   */
  const recordRows = (source: Source, written: Fragment) =>
    sql<{ row_id: string }>`
    WITH ${written}
    INSERT INTO ${st.rows} AS s (source, row_id, model, hash, tsv, embedded_at, changed_at)
    SELECT ${source.name}, w.ae_row, ${modelOf(source)}, w.ae_hash, w.ae_tsv, now(), q.enqueued_at
    FROM w LEFT JOIN ${st.queue} q ON q.source = ${source.name} AND q.row_id = w.ae_row
    ON CONFLICT (source, row_id) DO UPDATE SET model = EXCLUDED.model, hash = EXCLUDED.hash, tsv = EXCLUDED.tsv,
      embedded_at = EXCLUDED.embedded_at, changed_at = EXCLUDED.changed_at
    RETURNING s.row_id`

  /**
   * Writes all vectors of a batch in one statement, with each row's model, hash and full-text
   * vector. A row whose text no longer has the hash that was embedded is left alone (it is pending
   * again for its new content). Returns the written ids.
   */
  const writeVectors = (source: Source, rows: ReadonlyArray<VectorWrite>) =>
    Effect.gen(function*() {
      if (rows.length === 0) return []
      const vectors = yield* vectorsParam(rows.map((r) => r.vector))
      const batch = sql`unnest(${rows.map((r) => r.rowId)}::text[], ${
        rows.map((r) => r.hash)
      }::text[], ${vectors}) AS v(ae_id, ae_hash, ae_vec)`
      // The ANY keeps the plan on the primary key: a hash join on (id, md5) would hash every row of the table.
      const guard = sql`t.${id(source)} = ANY(${idArray(source, rows.map((r) => r.rowId))})
        AND t.${id(source)} = v.ae_id::${idType(source)} AND ${hash(source)} = v.ae_hash`
      // `w`: the rows whose text still hashes as embedded (data-modifying CTEs must be at the top level).
      const written = source.storage.kind === "column"
        ? sql`w AS (
            UPDATE ${table(source)} AS t SET ${sql(source.storage.column)} = v.ae_vec FROM ${batch} WHERE ${guard}
            RETURNING t.${id(source)}::text AS ae_row, v.ae_hash, ${tsvector(source, text(source))} AS ae_tsv)`
        : sql`w AS (
            SELECT t.${id(source)} AS ae_key, t.${id(source)}::text AS ae_row, v.ae_hash, v.ae_vec, ${
          tsvector(source, text(source))
        } AS ae_tsv
            FROM ${batch} JOIN ${table(source)} t ON ${guard}),
          ae_put AS (
            INSERT INTO ${st.vectors(source.name)} (id, embedding) SELECT ae_key, ae_vec FROM w
            ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding)`
      const done = yield* recordRows(source, written)
      return done.map((r) => r.row_id)
    }).pipe(retried("writeVectors"))

  return { loadTexts, writeVectors } as const
}
