/**
 * Figure 1, the vector write path: persisting N 1024-d vectors into the `messages` table (our
 * schema, its HNSW cosine index) on the PostgreSQL server.
 *
 *   per-row   one autocommitted `UPDATE ... WHERE id = $1` per row (how the original backend wrote),
 *             which also records the row in autoembed.rows (model, hash, full-text vector), as
 *             writeVectors does
 *   batched   `EmbeddingStore.writeVectors` (one hash-guarded `UPDATE ... FROM unnest` per batch,
 *             with its autoembed.rows rows in the same statement)
 *   rebuild   batched writes with the HNSW index dropped, then `CREATE INDEX` (maintenance_work_mem 1GB);
 *             the time includes the index build
 *
 * Same rows, same vectors, same index definition; every variant starts from an empty index.
 * Issue 11's bulk path (a whole backfill, index built once) has its own program, `bench/bulk.ts`,
 * and the choice of wire encoding its own, `bench/encoding.ts`.
 *
 *   pnpm bench write [--rows 2000] [--runs 3] [--batch 200]
 */
import {
  AutoEmbedConfig,
  EmbeddingStore,
  hnswIndexSql,
  indexSettingsOf,
  type Source,
  Sources,
  vectorLiteral
} from "@autoembed/core"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"
import { stateTables } from "../packages/core/src/storage/State.js"
import {
  BENCHMARK_MESSAGE_PREFIX,
  elapsedMs,
  figure,
  fmt,
  fmtSummary,
  goal,
  type MessageVector,
  messageVectors,
  note,
  now,
  numberFlag,
  perRowWriter,
  runIfMain,
  scratchTarget,
  storeLayer,
  summarize,
  writeResult
} from "./lib.js"

const DIMS = 1024
const MODEL = "bench/synthetic-1024"

type Row = MessageVector

type Env = SqlClient.SqlClient | EmbeddingStore | Sources | AutoEmbedConfig

interface Variant {
  readonly label: string
  /** Whether the HNSW index exists when the write starts. */
  readonly indexPresent: boolean
  readonly write: (source: Source, rows: ReadonlyArray<Row>, batch: number) => Effect.Effect<void, unknown, Env>
}

const createIndex = (source: Source) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const config = yield* AutoEmbedConfig
    yield* sql.withTransaction(
      Effect.gen(function*() {
        yield* sql`SET LOCAL maintenance_work_mem = '1GB'`
        yield* hnswIndexSql(sql, source.index, indexSettingsOf(config)(source))
      })
    )
  })

const batched = (source: Source, rows: ReadonlyArray<Row>, batch: number) =>
  Effect.gen(function*() {
    const store = yield* EmbeddingStore
    for (let i = 0; i < rows.length; i += batch) {
      const written = yield* store.writeVectors(source, rows.slice(i, i + batch))
      if (written.length !== Math.min(batch, rows.length - i)) {
        throw new Error(`batched write wrote ${written.length} rows`)
      }
    }
  })

/** The variants, in the order they are reported. */
export const variants: Record<string, Variant> = {
  perRow: {
    label: "one UPDATE per row, HNSW present",
    indexPresent: true,
    write: (source, rows) =>
      Effect.gen(function*() {
        const write = yield* perRowWriter(source)
        for (const r of rows) {
          yield* write({ rowId: r.rowId, vector: vectorLiteral(r.vector), model: MODEL, hash: r.hash })
        }
      })
  },
  batched: {
    label: "batched writeVectors, HNSW present",
    indexPresent: true,
    write: batched
  },
  rebuild: {
    label: "batched writeVectors, index dropped then rebuilt (CREATE INDEX, maintenance_work_mem 1GB)",
    indexPresent: false,
    write: (source, rows, batch) => Effect.zipRight(batched(source, rows, batch), createIndex(source))
  }
}

/**
 * Empties the table (and its index), autoembed's queue and bookkeeping, and inserts the same N rows
 * again, without the enqueue trigger.
 */
const resetTable = (source: Source, n: number, indexPresent: boolean) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const st = stateTables(sql, (yield* AutoEmbedConfig).stateSchema)
    yield* sql`TRUNCATE messages, ${st.queue}, ${st.rows} RESTART IDENTITY CASCADE`
    if (indexPresent) yield* createIndex(source)
    else yield* sql`DROP INDEX IF EXISTS ${sql(`${source.index.schema}.${source.index.name}`)}`
    yield* sql.withTransaction(Effect.gen(function*() {
      yield* sql`SET LOCAL session_replication_role = replica`
      yield* sql`INSERT INTO messages (content)
        SELECT ${BENCHMARK_MESSAGE_PREFIX}::text || g FROM generate_series(1, ${n}) g`
    }))
    yield* sql`VACUUM ANALYZE messages, ${st.rows}`
  })

export const main = async (args: ReadonlyArray<string> = []) => {
  const n = numberFlag(args, "rows", 2000)
  const runs = numberFlag(args, "runs", 3)
  const batch = numberFlag(args, "batch", 200)
  const target = await scratchTarget("postgres", "write")
  console.log(
    `write: ${
      n.toLocaleString("en-US")
    } rows × ${DIMS}-d per variant, ${runs} runs, batches of ${batch}, on ${target.label}`
  )
  try {
    const rows = messageVectors(n, DIMS, 1)
    const names = Object.keys(variants)
    const rates: Record<string, Array<number>> = Object.fromEntries(names.map((k) => [k, []]))
    const program = Effect.gen(function*() {
      const sources = yield* Sources
      const source = yield* sources.get("messages")
      for (let run = 0; run < runs; run++) {
        // Rotate the order so drift on a shared machine does not favour one variant.
        const order = names.map((_, i) => names[(i + run) % names.length])
        for (const key of order) {
          const v = variants[key]
          yield* resetTable(source, n, v.indexPresent)
          const t = now()
          yield* v.write(source, rows, batch)
          const ms = elapsedMs(t)
          const sql = yield* SqlClient.SqlClient
          const st = stateTables(sql, (yield* AutoEmbedConfig).stateSchema)
          const [check] = yield* sql<{ n: number; recorded: number; idx: number }>`
            SELECT count(*)::int AS n,
              (SELECT count(*)::int FROM ${st.rows} WHERE source = ${source.name} AND model = ${MODEL}) AS recorded,
              (SELECT count(*)::int FROM pg_indexes
                WHERE schemaname = ${source.index.schema} AND indexname = ${source.index.name}) AS idx
            FROM messages WHERE embedding IS NOT NULL`
          if (check.n !== n || check.recorded !== n || check.idx !== 1) {
            throw new Error(
              `${key}: ${check.n} vectors written, ${check.recorded} recorded in autoembed.rows, ` +
                `index present: ${check.idx}`
            )
          }
          rates[key].push(n / (ms / 1000))
          note(`run ${run + 1} ${key}: ${fmt(ms / 1000)} s, ${fmt(n / (ms / 1000))} rows/s`)
        }
      }
    })
    await Effect.runPromise(
      Effect.scoped(Effect.provide(program, storeLayer({ ...target.config, dimensions: DIMS }, MODEL)))
    )

    const ratio = (k: string) => summarize(rates[k].map((r, i) => r / rates.perRow[i]))
    const s = Object.fromEntries(names.map((k) => [k, summarize(rates[k])]))
    const batchedRatio = ratio("batched")
    const rebuildRatio = ratio("rebuild")
    figure(
      `write.batched: batched writeVectors vs one UPDATE per row, HNSW present = ${
        fmtSummary(batchedRatio, 2, "×")
      }; ` +
        `${fmt(s.batched.median)} vs ${fmt(s.perRow.median)} rows/s; ${
          n.toLocaleString("en-US")
        } rows × ${DIMS}-d; postgres; ${goal(batchedRatio.median >= 10)} (≥ 10×)`
    )
    figure(
      "write.rebuild: batched with index dropped then rebuilt (1GB maintenance_work_mem, build time included) " +
        `vs one UPDATE per row = ${fmtSummary(rebuildRatio, 2, "×")}; ` +
        `${fmt(s.rebuild.median)} vs ${fmt(s.perRow.median)} rows/s; ${
          n.toLocaleString("en-US")
        } rows × ${DIMS}-d; postgres; ${goal(rebuildRatio.median >= 10)} (≥ 10×)`
    )
    const result = {
      database: target.label,
      rows: n,
      dimensions: DIMS,
      batch,
      runs,
      variants: Object.fromEntries(
        names.map((k) => [k, { label: variants[k].label, rowsPerSecond: rates[k], summary: s[k] }])
      ),
      ratios: { batchedVsPerRow: batchedRatio, rebuildVsPerRow: rebuildRatio },
      goal: { target: "≥ 10× per-row", batchedMet: batchedRatio.median >= 10, rebuildMet: rebuildRatio.median >= 10 }
    }
    writeResult("write", result)
    return result
  } finally {
    await target.drop()
  }
}

runIfMain(import.meta.url, main)
