import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type * as Statement from "@effect/sql/Statement"
import type { Fragment } from "@effect/sql/Statement"
import { Duration, Effect } from "effect"
import { AutoEmbedConfig } from "../config/AutoEmbedConfig.js"
import type { RowKey } from "../pipeline/PendingSignal.js"
import { type Source, Sources } from "../sources/Sources.js"
import { sourceSql } from "../sources/SourceSql.js"
import { Database } from "./Database.js"
import { nameFailure, resilient } from "./SqlFailure.js"
import { stateTables } from "./State.js"
import { vectorArrayBinary, vectorLiteral } from "./VectorEncoding.js"

/** A queue row this process holds a lease on. `version` and `token` make completion exact. */
export interface ClaimedItem extends RowKey {
  readonly version: number
  readonly token: string
  readonly attempts: number
}

/** A claimed row's current text, with the md5 that guards the vector write. */
export interface LoadedRow {
  readonly rowId: string
  readonly text: string
  readonly hash: string
  /** True when the stored vector already matches this text and model. */
  readonly upToDate: boolean
}

export interface SourceCounts {
  readonly total: number
  readonly embedded: number
  /** No vector yet (not failed). */
  readonly missing: number
  /** A vector of another model, or of content that has changed since (not failed). */
  readonly stale: number
  readonly failed: number
  /** Queue rows waiting or in flight. */
  readonly pending: number
  readonly inFlight: number
  readonly oldestPendingSeconds: number | null
}

const compareKeys = (a: RowKey, b: RowKey): number =>
  a.source < b.source ? -1 : a.source > b.source ? 1 : a.rowId < b.rowId ? -1 : a.rowId > b.rowId ? 1 : 0

const newToken = () => `${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`

/**
 * The durable pending state and the vector writes. Every method is one short statement or
 * transaction; the provider is never called while a transaction is open.
 */
export class EmbeddingStore extends Effect.Service<EmbeddingStore>()("@autoembed/core/EmbeddingStore", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const sources = yield* Sources
    const config = yield* AutoEmbedConfig
    const database = yield* Database
    const leaseSeconds = config.leaseSeconds
    // A worker's statement waits out an outage for half a lease: its rows stay held meanwhile, and
    // what it already did (vectors paid for) is not lost to the lease running out.
    const retried = (name: string) => resilient(`EmbeddingStore.${name}`, Duration.seconds(leaseSeconds / 2))
    // A claim is not retried (it may have committed before the connection dropped: see releaseUnheld).
    const named = (name: string) => <A, R>(self: Effect.Effect<A, SqlError, R>) =>
      self.pipe(Effect.mapError(nameFailure(`EmbeddingStore.${name}`)), Effect.withSpan(`EmbeddingStore.${name}`))

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

    const st = stateTables(sql, config.stateSchema)
    const { hash, id, idArray, idType, table, text, tsvector } = sourceSql(sql)
    /** The row `t` has a vector: in its own column, or in autoembed's table of the source's vectors. */
    const hasVector = (s: Source): Fragment =>
      s.storage.kind === "column"
        ? sql`t.${sql(s.storage.column)} IS NOT NULL`
        : sql`EXISTS (SELECT 1 FROM ${st.vectors(s.name)} ae_v WHERE ae_v.id = t.${id(s)})`

    type ClaimRow = { source: string; row_id: string; version: number; attempts: number; claim_token: string }
    const toClaimed = (rows: ReadonlyArray<ClaimRow>): Array<ClaimedItem> =>
      rows.map((r) => ({
        source: r.source,
        rowId: r.row_id,
        version: Number(r.version),
        token: r.claim_token,
        attempts: r.attempts
      }))

    /** Leases the rows `selected` picks (locked, skipping rows another claim holds) under one new claim token. */
    const lease = (workerId: string, selected: Statement.Fragment) =>
      Effect.gen(function*() {
        const token = newToken()
        const rows = yield* sql<ClaimRow>`
          WITH c AS (${selected})
          UPDATE ${st.queue} q
          SET locked_until = now() + make_interval(secs => ${leaseSeconds}), next_attempt_at = now() + make_interval(secs => ${leaseSeconds}),
              locked_by = ${workerId}, claim_token = ${token}, last_attempt_at = now()
          FROM c WHERE q.source = c.source AND q.row_id = c.row_id
          RETURNING q.source, q.row_id, q.version, q.attempts, q.claim_token`
        return toClaimed(rows)
      })

    /**
     * Claims up to `limit` ready rows. A claim moves `next_attempt_at` to the end of the lease, so
     * leased rows leave the ready range and an expired lease becomes ready again by itself.
     */
    const claimReady = (limit: number, workerId: string, only: ReadonlyArray<string> = sources.names) =>
      Effect.gen(function*() {
        if (limit <= 0 || only.length === 0) return []
        return yield* lease(
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
          workerId,
          sql`
          SELECT q.source, q.row_id FROM ${st.queue} q
          JOIN unnest(${keys.map((k) => k.source)}::text[], ${keys.map((k) => k.rowId)}::text[]) AS k(source, row_id)
            ON q.source = k.source AND q.row_id = k.row_id
          WHERE q.failed_at IS NULL AND q.next_attempt_at <= now()
          FOR UPDATE OF q SKIP LOCKED`
        )
      }).pipe(named("claimKeys"))

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

    /** Extends the lease of items still held by their claim; returns those (a lost lease drops the item). */
    const renew = (items: ReadonlyArray<ClaimedItem>) =>
      Effect.gen(function*() {
        if (items.length === 0) return []
        const k = keyArrays(items)
        const rows = yield* sql<{ source: string; row_id: string }>`
          UPDATE ${st.queue} q
          SET locked_until = now() + make_interval(secs => ${leaseSeconds}), next_attempt_at = now() + make_interval(secs => ${leaseSeconds})
          FROM unnest(${k.sources}::text[], ${k.ids}::text[], ${k.versions}::bigint[], ${k.tokens}::text[]) AS d(source, row_id, version, token)
          WHERE q.source = d.source AND q.row_id = d.row_id AND q.version = d.version AND q.claim_token = d.token
          RETURNING q.source, q.row_id`
        const held = new Set(rows.map((r) => `${r.source}\u0000${r.row_id}`))
        return items.filter((i) => held.has(`${i.source}\u0000${i.rowId}`))
      }).pipe(retried("renew"))

    /** Current text of these rows; rows that no longer exist are absent. */
    const loadTexts = (source: Source, rowIds: ReadonlyArray<string>, model: string) =>
      Effect.gen(function*() {
        if (rowIds.length === 0) return []
        const rows = yield* sql<{ row_id: string; text: string | null; hash: string; up_to_date: boolean }>`
          SELECT x.ae_id AS row_id, x.ae_text AS text, md5(coalesce(x.ae_text, '')) AS hash,
                 (x.ae_has_vector AND s.model IS NOT DISTINCT FROM ${model} AND s.hash = md5(coalesce(x.ae_text, ''))) AS up_to_date
          FROM (
            SELECT t.${id(source)}::text AS ae_id, ${text(source)} AS ae_text, ${hasVector(source)} AS ae_has_vector
            FROM ${table(source)} t WHERE t.${id(source)} = ANY(${idArray(source, rowIds)})
          ) x
          LEFT JOIN ${st.rows} s ON s.source = ${source.name} AND s.row_id = x.ae_id`
        return rows.map((r): LoadedRow => ({
          rowId: r.row_id,
          text: r.text ?? "",
          hash: r.hash,
          upToDate: r.up_to_date
        }))
      }).pipe(retried("loadTexts"))

    /** Records what the written rows were embedded from, in the same statement as the vectors. */
    const recordRows = (source: Source, model: string, written: Fragment) =>
      sql<{ row_id: string }>`
      WITH ${written}
      INSERT INTO ${st.rows} AS s (source, row_id, model, hash, tsv, embedded_at)
      SELECT ${source.name}, w.ae_row, ${model}, w.ae_hash, w.ae_tsv, now() FROM w
      ON CONFLICT (source, row_id) DO UPDATE SET model = EXCLUDED.model, hash = EXCLUDED.hash, tsv = EXCLUDED.tsv, embedded_at = EXCLUDED.embedded_at
      RETURNING s.row_id`

    /**
     * Writes all vectors of a batch in one statement, with each row's model, hash and full-text
     * vector. A row whose text no longer has the hash that was embedded is left alone (it is pending
     * again for its new content). Returns the written ids.
     */
    const writeVectors = (
      source: Source,
      model: string,
      rows: ReadonlyArray<{ readonly rowId: string; readonly hash: string; readonly vector: ReadonlyArray<number> }>
    ) =>
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
        const done = yield* recordRows(source, model, written)
        return done.map((r) => r.row_id)
      }).pipe(retried("writeVectors"))

    /** Removes finished queue rows, only where no newer change re-queued them meanwhile. */
    const complete = (items: ReadonlyArray<ClaimedItem>) =>
      Effect.gen(function*() {
        if (items.length === 0) return
        const k = keyArrays(items)
        yield* sql`
          DELETE FROM ${st.queue} q
          USING unnest(${k.sources}::text[], ${k.ids}::text[], ${k.versions}::bigint[], ${k.tokens}::text[]) AS d(source, row_id, version, token)
          WHERE q.source = d.source AND q.row_id = d.row_id AND q.version = d.version AND q.claim_token = d.token`
      }).pipe(retried("complete"))

    /** Gives rows back for a later attempt (after `delayMs`), recording the error. */
    const release = (
      items: ReadonlyArray<ClaimedItem>,
      options: { delayMs: number; error?: string; countAttempt: boolean }
    ) =>
      Effect.gen(function*() {
        if (items.length === 0) return
        const k = keyArrays(items)
        yield* sql`
          UPDATE ${st.queue} q
          SET locked_until = NULL, locked_by = NULL, claim_token = NULL,
              next_attempt_at = now() + make_interval(secs => ${options.delayMs / 1000}),
              attempts = q.attempts + ${options.countAttempt ? 1 : 0},
              last_error = coalesce(${options.error ?? null}, q.last_error)
          FROM unnest(${k.sources}::text[], ${k.ids}::text[], ${k.versions}::bigint[], ${k.tokens}::text[]) AS d(source, row_id, version, token)
          WHERE q.source = d.source AND q.row_id = d.row_id AND q.version = d.version AND q.claim_token = d.token`
      }).pipe(retried("release"))

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
        (rows) => rows[0]?.n ?? 0
      ).pipe(retried("releaseUnheld"))

    /** Marks rows failed with their error; they stay out of the way until `retryFailed`. */
    const fail = (items: ReadonlyArray<ClaimedItem>, error: string) =>
      Effect.gen(function*() {
        if (items.length === 0) return
        const k = keyArrays(items)
        yield* sql`
          UPDATE ${st.queue} q
          SET locked_until = NULL, locked_by = NULL, claim_token = NULL, failed_at = now(),
              attempts = q.attempts + 1, last_error = ${error}, last_attempt_at = now()
          FROM unnest(${k.sources}::text[], ${k.ids}::text[], ${k.versions}::bigint[], ${k.tokens}::text[]) AS d(source, row_id, version, token)
          WHERE q.source = d.source AND q.row_id = d.row_id AND q.version = d.version AND q.claim_token = d.token`
      }).pipe(retried("fail"))

    /** Queue rows whose source row is gone (deleted while pending): dropped, not retried. */
    const drop = (items: ReadonlyArray<ClaimedItem>) => complete(items)

    const notQueued = (s: Source) =>
      sql`NOT EXISTS (SELECT 1 FROM ${st.queue} ae_q WHERE ae_q.source = ${s.name} AND ae_q.row_id = t.${id(s)}::text)`

    /**
     * Vectors already in a source's own column that autoembed has no record of (the table was filled
     * before it was attached) are taken as the configured model's: their text's hash and full-text
     * vector are recorded, so search finds them without paying for them again. Rows pending in the
     * queue are left to the workers (their text changed after the vector was written).
     */
    const adopt = (s: Source, model: string, limit: number) =>
      Effect.gen(function*() {
        if (s.storage.kind !== "column") return 0
        const rows = yield* sql<{ n: number }>`
          WITH ins AS (
            INSERT INTO ${st.rows} (source, row_id, model, hash, tsv)
            SELECT ${s.name}, x.ae_id, ${model}, md5(coalesce(x.ae_text, '')), ${tsvector(s, sql`x.ae_text`)}
            FROM (
              SELECT t.${id(s)}::text AS ae_id, ${text(s)} AS ae_text FROM ${table(s)} t
              WHERE ${hasVector(s)} AND ${notQueued(s)}
                AND NOT EXISTS (SELECT 1 FROM ${st.rows} ae_r WHERE ae_r.source = ${s.name} AND ae_r.row_id = t.${
          id(s)
        }::text)
              LIMIT ${limit}
            ) x
            ON CONFLICT DO NOTHING
            RETURNING 1
          ) SELECT count(*)::int AS n FROM ins`
        return rows[0]?.n ?? 0
      })

    /**
     * Queues up to `limit` rows with no vector, then up to `limit` with another model's, that nobody
     * queued. Two statements, each on its own access path: the missing ones by one scan of the
     * user's table (7 ms per 100,000 rows here; autoembed may not add a partial index to it), the
     * stale ones from the bookkeeping's (source, model) index as two range scans around the current
     * model (`<>` would read every entry of the source).
     */
    const queueMissing = (s: Source, model: string, limit: number) =>
      Effect.gen(function*() {
        const count = (rows: ReadonlyArray<{ n: number }>) => rows[0]?.n ?? 0
        const missing = count(
          yield* sql<{ n: number }>`
          WITH ins AS (
            INSERT INTO ${st.queue} (source, row_id)
            SELECT ${s.name}, t.${id(s)}::text FROM ${table(s)} t
            WHERE NOT ${hasVector(s)} AND ${notQueued(s)}
            LIMIT ${limit}
            ON CONFLICT DO NOTHING
            RETURNING 1
          ) SELECT count(*)::int AS n FROM ins`
        )
        const stale = count(
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
     * Finds rows nobody queued (written with triggers off, restored, or from before autoembed):
     * queues rows with no vector or another model's and, unless `adopt` is false, adopts existing
     * vectors it has no record of; up to `limit` of each per source. Returns how many it adopted and queued.
     */
    const discover = (
      model: string,
      limit: number,
      only: ReadonlyArray<string> = sources.names,
      options: { readonly adopt?: boolean } = {}
    ) =>
      Effect.gen(function*() {
        let adopted = 0
        let queued = 0
        for (const s of sources.all) {
          if (!only.includes(s.name)) continue
          if (options.adopt !== false) adopted += yield* adopt(s, model, limit)
          queued += yield* queueMissing(s, model, limit)
        }
        return { adopted, queued }
      }).pipe(named("discover"))

    /** Puts failed rows back in the queue with a fresh attempt count. */
    const retryFailed = (only: ReadonlyArray<string> = sources.names) =>
      Effect.map(
        sql<{ n: number }>`
          WITH r AS (
            UPDATE ${st.queue} SET failed_at = NULL, attempts = 0, next_attempt_at = now(),
              locked_until = NULL, locked_by = NULL, claim_token = NULL
            WHERE failed_at IS NOT NULL AND source = ANY(${only}::text[])
            RETURNING 1
          ) SELECT count(*)::int AS n FROM r`,
        (rows) => rows[0]?.n ?? 0
      ).pipe(named("retryFailed"))

    /** Exact per-source counts, from the user's table, autoembed's bookkeeping and the (small) queue table. */
    const counts = (model: string, options: { withTotal: boolean } = { withTotal: true }) =>
      Effect.forEach(sources.all, (s) =>
        Effect.gen(function*() {
          const notFailed = (row: Fragment) =>
            sql`NOT EXISTS (SELECT 1 FROM ${st.queue} ae_q WHERE ae_q.source = ${s.name} AND ae_q.row_id = ${row} AND ae_q.failed_at IS NOT NULL)`
          const [r] = yield* sql<{
            total: number | null
            missing: number
            stale_model: number
            stale_content: number
            failed: number
            pending: number
            in_flight: number
            oldest: number | null
          }>`
            SELECT
              ${options.withTotal ? sql`(SELECT count(*) FROM ${table(s)})::int` : sql`NULL::int`} AS total,
              (SELECT count(*) FROM ${table(s)} t WHERE NOT ${hasVector(s)} AND ${
            notFailed(sql`t.${id(s)}::text`)
          })::int AS missing,
              (SELECT count(*) FROM ${st.rows} ae_r JOIN ${table(s)} t ON t.${id(s)} = ae_r.row_id::${idType(s)}
                 WHERE ae_r.source = ${s.name} AND ae_r.model <> ${model} AND ${hasVector(s)} AND ${
            notFailed(sql`ae_r.row_id`)
          })::int AS stale_model,
              (SELECT count(*) FROM ${st.queue} ae_q JOIN ${st.rows} ae_r ON ae_r.source = ae_q.source AND ae_r.row_id = ae_q.row_id
                 WHERE ae_q.source = ${s.name} AND ae_q.failed_at IS NULL AND ae_r.model = ${model})::int AS stale_content,
              (SELECT count(*) FROM ${st.queue} WHERE source = ${s.name} AND failed_at IS NOT NULL)::int AS failed,
              (SELECT count(*) FROM ${st.queue} WHERE source = ${s.name} AND failed_at IS NULL)::int AS pending,
              (SELECT count(*) FROM ${st.queue} WHERE source = ${s.name} AND failed_at IS NULL AND locked_until > now())::int AS in_flight,
              (SELECT extract(epoch FROM now() - min(enqueued_at))::float8 FROM ${st.queue} WHERE source = ${s.name} AND failed_at IS NULL) AS oldest`
          const total = r.total ?? 0
          const c: SourceCounts = {
            total,
            embedded: options.withTotal ? Math.max(0, total - r.missing - r.failed) : 0,
            missing: r.missing,
            stale: r.stale_model + r.stale_content,
            failed: r.failed,
            pending: r.pending,
            inFlight: r.in_flight,
            oldestPendingSeconds: r.oldest === null ? null : Math.round(r.oldest)
          }
          return [s.name, c] as const
        })).pipe(Effect.map((entries) => Object.fromEntries(entries) as Record<string, SourceCounts>), named("counts"))

    /** The last errors recorded on queue rows, newest first. */
    const recentErrors = (limit = 5) =>
      sql<{ source: string; row_id: string; error: string; at: Date; attempts: number; failed: boolean }>`
        SELECT source, row_id, last_error AS error, last_attempt_at AS at, attempts, (failed_at IS NOT NULL) AS failed
        FROM ${st.queue} WHERE last_error IS NOT NULL AND last_attempt_at IS NOT NULL
        ORDER BY last_attempt_at DESC LIMIT ${limit}`

    return {
      claimReady,
      claimKeys,
      renew,
      loadTexts,
      writeVectors,
      complete,
      release,
      releaseUnheld,
      fail,
      drop,
      discover,
      retryFailed,
      counts,
      recentErrors
    } as const
  })
}) {}

/** What rows record as their embedding's origin; search only compares vectors with the same key. */
export const modelKeyOf = (provider: { readonly provider: string; readonly model: string }): string =>
  `${provider.provider}/${provider.model}`
