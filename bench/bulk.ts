/**
 * Issue 11's figure: a bulk backfill (HNSW index dropped, rows embedded and written, index built
 * once) end to end against one UPDATE per row into the indexed table (the old backend's way), at
 * 10,000 and 100,000 rows of 1024-d on the PostgreSQL server, with the Local provider (in process,
 * so the provider costs almost nothing). Then recall@10 of the built index against exact search,
 * for a `vector` index and, rebuilt by `reindex`, a `halfvec` expression index.
 *
 * Two per-row baselines. "Full": the old backend's backfill from scratch, every row one
 * autocommitted UPDATE into the table with its (initially empty) HNSW index; run for sizes up to
 * --full (at 100,000 rows it would take about half an hour). "Sample": one UPDATE per row for a
 * random sample of the loaded table with its full index, i.e. the per-row cost at the end of such
 * a run, which overstates the average; the full run at 10,000 rows shows by how much.
 * Each per-row UPDATE also records its row in autoembed.rows (model, hash, full-text vector) in the
 * same statement, as every vector write does. Vectors for the baselines are computed before the
 * clock starts (the provider is excluded there).
 *
 * Index builds use --build-workers parallel workers (default: this machine's cores - 1, as the
 * benchmark server runs here; 2 workers on 2 cores built 100,000 rows 10 % slower than 1).
 *
 *   pnpm bench bulk [--sizes 10000,100000] [--sample 1000] [--full 10000] [--queries 50] [--build-workers N]
 */
import {
  AutoEmbed,
  AutoEmbedConfig,
  Backfill,
  type BackfillJob,
  EmbeddingProvider,
  embedLocal,
  hnswIndexSql,
  LocalProviderLive,
  modelKeyOf,
  Search,
  Sources,
  VectorIndex,
  vectorLiteral
} from "@autoembed/core"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Option, Redacted } from "effect"
import { createHash } from "node:crypto"
import * as Os from "node:os"
import { stateTables } from "../packages/core/src/storage/State.js"
import {
  createScratchDatabase,
  describeServer,
  elapsedMs,
  figure,
  flagValue,
  fmt,
  goal,
  note,
  now,
  numberFlag,
  perRowWriter,
  runIfMain,
  writeResult
} from "./lib.js"

const DIMS = 1024
const WORDS = (
  "deploy migration index vector queue lease retry schema replica backup latency cache invoice webhook outbox " +
  "partition timeout export incident pager rollback canary feature flag customer region residency audit token"
).split(" ")

/** Sentence-like rows so the Local provider's vectors spread like real text. */
const text = (i: number) => {
  let x = (i * 2654435761) >>> 0
  const pick = () => ((x = (x * 1103515245 + 12345) >>> 0), WORDS[x % WORDS.length])
  return `${pick()} ${pick()} ${pick()} note ${i}: the ${pick()} ${pick()} after the ${pick()} ${pick()}`
}

const layerFor = (url: string, overrides: Record<string, unknown> = {}) =>
  AutoEmbed.layer({
    env: false,
    workers: false,
    provider: LocalProviderLive,
    config: {
      databaseUrl: Option.some(Redacted.make(url)),
      provider: "local",
      dimensions: DIMS,
      batchSize: 256,
      concurrency: 2,
      logLevel: "warning",
      ...overrides
    } as any
  })

const recallAt10 = (queries: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const search = yield* Search
    let hits = 0
    const latencies: Array<number> = []
    for (const q of queries) {
      const t = now()
      const viaIndex = yield* search.search({ q, mode: "vector", limit: 10, types: ["atoms"] })
      latencies.push(elapsedMs(t))
      const exact = yield* search.search({ q, mode: "vector", limit: 10, types: ["atoms"] }, { exact: true })
      const truth = new Set(exact.results.map((r) => r.id))
      hits += viaIndex.results.filter((r) => truth.has(r.id)).length / Math.max(1, truth.size)
    }
    latencies.sort((a, b) => a - b)
    return { recall: hits / queries.length, p50: latencies[Math.floor(latencies.length / 2)] }
  })

const md5 = (text: string) => createHash("md5").update(text).digest("hex")

/** The old backend's backfill from scratch: an empty HNSW index, then one autocommitted UPDATE per row. */
const fullPerRow = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const config = yield* AutoEmbedConfig
  const st = stateTables(sql, config.stateSchema)
  const model = modelKeyOf(yield* EmbeddingProvider)
  const atoms = yield* (yield* Sources).get("atoms")
  const write = yield* perRowWriter(atoms)
  const all = yield* sql<
    { id: number; text: string }
  >`SELECT id, title || E'\\n\\n' || content AS text FROM atoms ORDER BY id`
  yield* sql`DROP INDEX IF EXISTS ${sql(`${atoms.index.schema}.${atoms.index.name}`)}`
  yield* sql`UPDATE atoms SET embedding = NULL`
  yield* sql`DELETE FROM ${st.rows} WHERE source = ${atoms.name}`
  yield* sql`VACUUM ANALYZE atoms, ${st.rows}`
  yield* hnswIndexSql(sql, atoms.index, {
    kind: "vector",
    dimensions: DIMS,
    m: config.hnswM,
    efConstruction: config.hnswEfConstruction
  })
  // Only the UPDATEs are timed: each vector is computed just before its statement (computing all
  // 100,000 first would hold a gigabyte of text).
  let ms = 0
  for (const row of all) {
    const vector = vectorLiteral(embedLocal(row.text, DIMS))
    const hash = md5(row.text)
    const t = now()
    yield* write({ rowId: String(row.id), vector, model, hash })
    ms += elapsedMs(t)
  }
  return all.length / (ms / 1000)
})

const runSize = (rows: number, sample: number, full: number, queries: number, buildWorkers: number) =>
  Effect.gen(function*() {
    const scratch = yield* Effect.promise(() => createScratchDatabase(`bulk${rows}`))
    try {
      return yield* Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        // Rows written before autoembed (no trigger), like a database that arrives needing a backfill.
        yield* sql.withTransaction(Effect.gen(function*() {
          yield* sql`SET LOCAL session_replication_role = replica`
          for (let start = 1; start <= rows; start += 10_000) {
            const texts = Array.from({ length: Math.min(10_000, rows - start + 1) }, (_, k) => text(start + k))
            yield* sql`INSERT INTO atoms (type, title, content)
              SELECT 'insight', 'Note', t FROM unnest(${texts}::text[]) t`
          }
        }))
        const backfill = yield* Backfill
        const t0 = now()
        let loadSeconds = 0
        const onProgress = (j: BackfillJob) =>
          Effect.sync(() => {
            if (j.phase === "indexing" && loadSeconds === 0) loadSeconds = elapsedMs(t0) / 1000
          })
        const job = yield* backfill.run({ entityTypes: ["atoms"], bulk: "on" }, onProgress)
        const bulkSeconds = elapsedMs(t0) / 1000
        if (job.state !== "succeeded" || job.succeeded !== rows) {
          throw new Error(`bulk run ended ${job.state} with ${job.succeeded}/${rows}`)
        }
        const bulkRate = rows / bulkSeconds

        // Baseline: one autocommitted UPDATE per row into the same indexed table, on a sample.
        const ids = yield* sql<
          { id: number; content: string }
        >`SELECT id, 'Note' || E'\\n\\n' || content AS content FROM atoms ORDER BY random() LIMIT ${sample}`
        const vectors = ids.map((r) => vectorLiteral(embedLocal(r.content, DIMS).map((x) => x * 0.999 + 0.0001)))
        const hashes = ids.map((r) => md5(r.content))
        const model = modelKeyOf(yield* EmbeddingProvider)
        const write = yield* perRowWriter(yield* (yield* Sources).get("atoms"))
        const t1 = now()
        for (let i = 0; i < ids.length; i++) {
          yield* write({ rowId: String(ids[i].id), vector: vectors[i], model, hash: hashes[i] })
        }
        const perRowRate = ids.length / (elapsedMs(t1) / 1000)
        // Put the sample's true vectors back before measuring recall: recorded as another model's,
        // they are stale, and the backfill embeds them again.
        const st = stateTables(sql, (yield* AutoEmbedConfig).stateSchema)
        yield* sql`UPDATE ${st.rows} SET model = 'bench/perturbed' WHERE source = 'atoms' AND row_id = ANY(${
          ids.map((r) => String(r.id))
        }::text[])`
        yield* backfill.run({ entityTypes: ["atoms"], bulk: "off" }).pipe(Effect.ignore)
        const qs = Array.from({ length: queries }, (_, i) => text(rows * 7 + i).split(" ").slice(0, 4).join(" "))
        const vectorRecall = yield* recallAt10(qs)

        // halfvec: the same rows, the index rebuilt by `reindex` with AUTOEMBED_INDEX_TYPE=halfvec.
        const config = yield* AutoEmbedConfig
        const t2 = now()
        const halfvec = yield* Effect.gen(function*() {
          yield* Effect.flatMap(VectorIndex, (v) => v.reindex({ sources: ["atoms"] }))
          const seconds = elapsedMs(t2) / 1000
          return { seconds, ...(yield* recallAt10(qs)) }
        }).pipe(
          Effect.provide(
            layerFor(scratch.url, {
              indexKind: "halfvec",
              efSearch: config.efSearch,
              indexBuildWorkers: Option.some(buildWorkers)
            })
          )
        )
        // Last, as it replaces every vector: the full per-row backfill from scratch.
        const fullRate = rows <= full ? yield* fullPerRow : null
        return {
          rows,
          bulkSeconds,
          loadSeconds,
          buildSeconds: bulkSeconds - loadSeconds,
          bulkRate,
          perRowRate,
          sample: ids.length,
          ratio: bulkRate / perRowRate,
          fullRate,
          fullRatio: fullRate === null ? null : bulkRate / fullRate,
          vectorRecall,
          halfvec
        }
      }).pipe(Effect.provide(layerFor(scratch.url, { bulkThreshold: 1, indexBuildWorkers: Option.some(buildWorkers) })))
    } finally {
      yield* Effect.promise(() => scratch.drop())
    }
  })

export const main = async (args: ReadonlyArray<string> = []) => {
  const sizes = flagValue(args, "sizes", "10000,100000").split(",").map(Number)
  const sample = numberFlag(args, "sample", 1000)
  const queries = numberFlag(args, "queries", 50)
  const full = numberFlag(args, "full", 10000)
  const buildWorkers = numberFlag(args, "build-workers", Math.max(1, Os.cpus().length - 1))
  console.log(
    `bulk backfill vs one UPDATE per row, ${DIMS}-d, Local provider, ${describeServer()}; ` +
      `per-row: full run up to ${full} rows, and a ${sample}-row sample`
  )
  const results = []
  for (const rows of sizes) {
    const r = await Effect.runPromise(runSize(rows, sample, full, queries, buildWorkers))
    results.push(r)
    note(
      `${fmt(rows, 0)} rows: queue + embed + write ${fmt(r.loadSeconds, 1)} s, index build ${fmt(r.buildSeconds, 1)} s`
    )
    if (r.fullRate !== null && r.fullRatio !== null) {
      figure(
        `bulk backfill ${fmt(rows, 0)} rows: ${fmt(r.bulkRate, 0)} rows/s end to end (${
          fmt(r.bulkSeconds, 1)
        } s incl. index build) vs a full per-row backfill into the indexed table ${fmt(r.fullRate, 0)} rows/s = ${
          fmt(r.fullRatio, 1)
        }x (${goal(r.fullRatio >= 10)}, goal >= 10x)`
      )
    }
    figure(
      `bulk backfill ${fmt(rows, 0)} rows: ${
        fmt(r.bulkRate, 0)
      } rows/s end to end vs one UPDATE per row on a ${r.sample}-row sample of the full index ${
        fmt(r.perRowRate, 0)
      } rows/s = ${fmt(r.ratio, 1)}x (${goal(r.ratio >= 10)}, goal >= 10x)`
    )
    figure(
      `recall@10 of the built vector index vs exact at ${fmt(rows, 0)} rows, ef_search 100: ${
        fmt(r.vectorRecall.recall, 3)
      } (${goal(r.vectorRecall.recall >= 0.95)}); p50 ${fmt(r.vectorRecall.p50, 1)} ms`
    )
    figure(
      `recall@10 of a halfvec index (reindex ${fmt(r.halfvec.seconds, 1)} s) at ${fmt(rows, 0)} rows: ${
        fmt(r.halfvec.recall, 3)
      } (${goal(r.halfvec.recall >= 0.95)}); p50 ${fmt(r.halfvec.p50, 1)} ms`
    )
  }
  note(
    "per-row UPDATEs hit the same HNSW index a bulk run builds once; " +
      "the sample is drawn at random from the loaded table"
  )
  writeResult("bulk", { dims: DIMS, sample, queries, results })
  return results
}

runIfMain(import.meta.url, main)

export type { EmbeddingProvider, Sources }
