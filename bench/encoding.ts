/**
 * Issue 11, deliverable 3: how vectors should travel to the server. N rows of 1024-d written
 * into `messages` with its HNSW index dropped (as the bulk path writes), so the encoding, not the
 * graph insert, is what differs. Each variant starts from the same table with no vectors.
 *
 *   text       `UPDATE ... FROM unnest($ids, $hashes, $vectors::text[])`: pgvector's text form,
 *              how writeVectors wrote before (1,024 float4in calls a row on the server)
 *   binary     `EmbeddingStore.writeVectors`: the same statement with one binary `vector[]` parameter
 *   binary×2   the same, two writers at once (the backfill pool's default concurrency is 2)
 *   copy       `COPY stage FROM STDIN (FORMAT binary)` into a temporary table, then one hash-guarded
 *              `UPDATE ... FROM stage` per 5,000 rows (pg-copy-streams, a dev dependency for this only)
 *
 * Every variant does writeVectors' work per row: the hash-guarded vector write and, in the same
 * statement, the row's autoembed.rows record (model, hash, full-text vector, time).
 *
 *   pnpm bench encoding [--rows 20000] [--runs 3] [--batch 256]
 */
import { AutoEmbedConfig, EmbeddingStore, type Source, Sources, vectorLiteral } from "@autoembed/core"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import { Effect } from "effect"
import { Readable } from "node:stream"
import { pipeline } from "node:stream/promises"
import pg from "pg"
import copyStreams from "pg-copy-streams"
import { sourceSql } from "../packages/core/src/sources/SourceSql.js"
import { stateTables } from "../packages/core/src/storage/State.js"
import {
  BENCHMARK_MESSAGE_PREFIX,
  elapsedMs,
  figure,
  fmt,
  fmtSummary,
  type MessageVector,
  messageVectors,
  note,
  now,
  numberFlag,
  runIfMain,
  scratchTarget,
  storeLayer,
  summarize,
  writeResult
} from "./lib.js"

const DIMS = 1024
const MODEL = "bench/synthetic-1024"
const COPY_CHUNK = 5000

type Row = MessageVector

const chunks = <A>(xs: ReadonlyArray<A>, size: number) =>
  Array.from({ length: Math.ceil(xs.length / size) }, (_, i) => xs.slice(i * size, (i + 1) * size))

/**
 * writeVectors' statement for `messages` around a data-modifying CTE `w` (ae_row, ae_hash, ae_tsv):
 * the written rows are recorded in autoembed.rows with the model, as writeVectors records them.
 */
const recordWritten = (source: Source, written: Fragment) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = stateTables(sql, (yield* AutoEmbedConfig).stateSchema).rows
    return sql`
      WITH ${written}
      INSERT INTO ${rows} AS s (source, row_id, model, hash, tsv, embedded_at)
      SELECT ${source.name}, w.ae_row, ${MODEL}, w.ae_hash, w.ae_tsv, now() FROM w
      ON CONFLICT (source, row_id) DO UPDATE SET model = EXCLUDED.model, hash = EXCLUDED.hash, tsv = EXCLUDED.tsv,
        embedded_at = EXCLUDED.embedded_at`
  })

const textBatch = (source: Source) => (rows: ReadonlyArray<Row>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const { hash, text, tsvector } = sourceSql(sql)
    yield* yield* recordWritten(
      source,
      sql`w AS (
      UPDATE messages AS t SET embedding = v.e::vector
      FROM unnest(${rows.map((r) => r.rowId)}::text[], ${rows.map((r) => r.hash)}::text[], ${
        rows.map((r) => vectorLiteral(r.vector))
      }::text[]) AS v(id, h, e)
      WHERE t.id = ANY(${rows.map((r) => r.rowId)}::text[]::bigint[]) AND t.id = v.id::bigint AND ${hash(source)} = v.h
      RETURNING t.id::text AS ae_row, v.h AS ae_hash, ${tsvector(source, text(source))} AS ae_tsv)`
    )
  })

const binaryBatch = (source: Source) => (rows: ReadonlyArray<Row>) =>
  Effect.flatMap(EmbeddingStore, (store) => store.writeVectors(source, rows))

/** PostgreSQL's binary COPY format: a header, then per row its field count and length-prefixed fields. */
const copyPayload = (rows: ReadonlyArray<Row>): Array<Buffer> => {
  const header = Buffer.alloc(19)
  header.write("PGCOPY\n\xff\r\n\0", 0, "latin1")
  const out = [header]
  for (const r of rows) {
    const hash = Buffer.from(r.hash)
    const b = Buffer.alloc(2 + 4 + 8 + 4 + hash.length + 4 + 4 + 4 * r.vector.length)
    let o = b.writeInt16BE(3, 0)
    o = b.writeInt32BE(8, o)
    o = b.writeBigInt64BE(BigInt(r.rowId), o)
    o = b.writeInt32BE(hash.length, o)
    o += hash.copy(b, o)
    o = b.writeInt32BE(4 + 4 * r.vector.length, o)
    o = b.writeInt16BE(r.vector.length, o)
    o = b.writeInt16BE(0, o)
    for (const x of r.vector) o = b.writeFloatBE(x, o)
    out.push(b)
  }
  const trailer = Buffer.alloc(2)
  trailer.writeInt16BE(-1, 0)
  out.push(trailer)
  return out
}

/** `update`: the hash-guarded UPDATE from `stage` with its autoembed.rows record, as text and parameters. */
const copyAll = (url: string, rows: ReadonlyArray<Row>, update: readonly [string, ReadonlyArray<unknown>]) =>
  Effect.promise(async () => {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    try {
      await client.query(`CREATE TEMP TABLE stage (id bigint, h text, e vector(${DIMS}))`)
      for (const chunk of chunks(rows, COPY_CHUNK)) {
        await pipeline(
          Readable.from(copyPayload(chunk)),
          client.query(copyStreams.from("COPY stage FROM STDIN (FORMAT binary)"))
        )
        await client.query(update[0], [...update[1]])
        await client.query("TRUNCATE stage")
      }
    } finally {
      await client.end()
    }
  })

export const main = async (args: ReadonlyArray<string> = []) => {
  const n = numberFlag(args, "rows", 20_000)
  const runs = numberFlag(args, "runs", 3)
  const batch = numberFlag(args, "batch", 256)
  const target = await scratchTarget("postgres", "encoding")
  console.log(
    `encoding: ${
      n.toLocaleString("en-US")
    } rows × ${DIMS}-d per variant, HNSW index dropped, ${runs} runs, batches of ${batch}, on ${target.label}`
  )
  try {
    const rows = messageVectors(n, DIMS, 7)
    const names = ["text", "binary", "binary×2", "copy"] as const
    const rates: Record<string, Array<number>> = Object.fromEntries(names.map((k) => [k, []]))
    const program = Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const source = yield* (yield* Sources).get("messages")
      const st = stateTables(sql, (yield* AutoEmbedConfig).stateSchema)
      const { hash, text, tsvector } = sourceSql(sql)
      yield* sql`DROP INDEX IF EXISTS ${sql(`${source.index.schema}.${source.index.name}`)}`
      yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql`SET LOCAL session_replication_role = replica`
        yield* sql`INSERT INTO messages (content)
          SELECT ${BENCHMARK_MESSAGE_PREFIX}::text || g FROM generate_series(1, ${n}) g`
      }))
      const fromStage = (yield* recordWritten(
        source,
        sql`w AS (
        UPDATE messages AS t SET embedding = s.e FROM stage s WHERE t.id = s.id AND ${hash(source)} = s.h
        RETURNING t.id::text AS ae_row, s.h AS ae_hash, ${tsvector(source, text(source))} AS ae_tsv)`
      )).compile()
      const write: Record<
        (typeof names)[number],
        Effect.Effect<unknown, unknown, SqlClient.SqlClient | EmbeddingStore | AutoEmbedConfig>
      > = {
        text: Effect.forEach(chunks(rows, batch), textBatch(source), { discard: true }),
        binary: Effect.forEach(chunks(rows, batch), binaryBatch(source), { discard: true }),
        "binary×2": Effect.forEach(chunks(rows, batch), binaryBatch(source), { discard: true, concurrency: 2 }),
        copy: copyAll(target.url!, rows, fromStage)
      }
      for (let run = 0; run < runs; run++) {
        const order = names.map((_, i) => names[(i + run) % names.length])
        for (const key of order) {
          yield* sql`UPDATE messages SET embedding = NULL`
          yield* sql`TRUNCATE ${st.rows}`
          yield* sql`VACUUM ANALYZE messages, ${st.rows}`
          const t = now()
          yield* write[key]
          const ms = elapsedMs(t)
          const [check] = yield* sql<{ n: number }>`
            SELECT count(*)::int AS n FROM messages t
            JOIN ${st.rows} ae_r ON ae_r.source = ${source.name} AND ae_r.row_id = t.id::text
            WHERE t.embedding IS NOT NULL AND ae_r.model = ${MODEL}`
          if (check.n !== n) throw new Error(`${key}: ${check.n} of ${n} vectors written`)
          rates[key].push(n / (ms / 1000))
          note(`run ${run + 1} ${key}: ${fmt(ms / 1000)} s, ${fmt(n / (ms / 1000), 0)} rows/s`)
        }
      }
    })
    await Effect.runPromise(
      Effect.scoped(Effect.provide(program, storeLayer({ ...target.config, dimensions: DIMS }, MODEL)))
    )

    const s = Object.fromEntries(names.map((k) => [k, summarize(rates[k])]))
    const ratio = (k: string) => summarize(rates[k].map((r, i) => r / rates.text[i]))
    for (const k of names.slice(1)) {
      figure(
        `encoding.${k}: ${fmt(s[k].median, 0)} rows/s vs text ${fmt(s.text.median, 0)} rows/s = ${
          fmtSummary(ratio(k), 2, "×")
        }; ${n.toLocaleString("en-US")} rows × ${DIMS}-d, no HNSW index; postgres`
      )
    }
    const result = {
      database: target.label,
      rows: n,
      dimensions: DIMS,
      batch,
      runs,
      variants: Object.fromEntries(names.map((k) => [k, { rowsPerSecond: rates[k], summary: s[k], vsText: ratio(k) }]))
    }
    writeResult("encoding", result)
    return result
  } finally {
    await target.drop()
  }
}

runIfMain(import.meta.url, main)
