import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { AutoEmbedConfig } from "../packages/core/src/config/AutoEmbedConfig.js"
import { Backfill } from "../packages/core/src/pipeline/Backfill.js"
import { PipelineMetrics } from "../packages/core/src/pipeline/PipelineMetrics.js"
import { EmbeddingProvider } from "../packages/core/src/providers/EmbeddingProvider.js"
import { Search } from "../packages/core/src/search/Search.js"
import { Sources } from "../packages/core/src/sources/Sources.js"
import { Database } from "../packages/core/src/storage/Database.js"
import { buildMemoryPlan, VectorIndex } from "../packages/core/src/storage/VectorIndex.js"
import { storeLayer } from "./support/Pipeline.js"
import { tier } from "./support/TestDatabase.js"

const DIMS = 48
const Live = Layer.mergeAll(Backfill.Default, Search.Default).pipe(
  Layer.provideMerge(storeLayer({ dimensions: DIMS, batchSize: 100, concurrency: 2, bulkThreshold: 500 }))
)

const indexRow = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  return yield* sql<{ valid: boolean; def: string }>`
    SELECT i.indisvalid AS valid, pg_get_indexdef(i.indexrelid) AS def
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE c.relname = 'autoembed_atoms_hnsw'`
})

const seed = (n: number, offset = 0) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const words = [
      "latency",
      "deploy",
      "index",
      "vector",
      "migration",
      "queue",
      "cache",
      "lease",
      "retry",
      "schema",
      "replica",
      "backup"
    ]
    yield* sql.withTransaction(Effect.gen(function*() {
      yield* sql`SET LOCAL session_replication_role = replica`
      yield* sql`INSERT INTO atoms (type, title, content)
        SELECT 'insight', 'Note ' || g,
          (${words}::text[])[1 + g % 12] || ' ' || (${words}::text[])[1 + (g / 12) % 12] || ' observation ' || g
        FROM generate_series(${offset + 1}::int, ${offset + n}::int) g`
    }))
  })

describe(`bulk backfill and index management (${tier()})`, () => {
  layer(Live, { timeout: 300_000, excludeTestServices: true })((it) => {
    it.effect(
      "a bulk run drops the index, loads, builds it once: all rows embedded, index valid, search order equals exact",
      () =>
        Effect.gen(function*() {
          const backfill = yield* Backfill
          const search = yield* Search
          yield* seed(800)
          const sql = yield* SqlClient.SqlClient
          const messagesIndex = () => sql<{ oid: number }>`SELECT 'autoembed_messages_hnsw'::regclass::oid::int8 AS oid`
          const [messagesBefore] = yield* messagesIndex()
          // All types, bulk forced on: only atoms has work, so messages keeps its index as it was.
          const job = yield* backfill.run({ bulk: "on" })
          expect(job.state).toBe("succeeded")
          expect(job.bulkTypes).toEqual(["atoms"])
          expect((yield* messagesIndex())[0].oid).toBe(messagesBefore.oid)
          expect(job.succeeded).toBe(800)
          const [index] = yield* indexRow
          expect(index.valid).toBe(true)
          expect(yield* sql`SELECT * FROM autoembed.index_state`).toEqual([])
          const [left] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM atoms WHERE embedding IS NULL`
          expect(left.n).toBe(0)
          for (const q of ["deploy latency", "vector index", "retry lease queue", "backup replica"]) {
            const viaIndex = yield* search.search({ q, mode: "vector", limit: 10, types: ["atoms"] })
            const exact = yield* search.search({ q, mode: "vector", limit: 10, types: ["atoms"] }, { exact: true })
            expect(viaIndex.results.map((r) => r.id)).toEqual(exact.results.map((r) => r.id))
          }
        }),
      240_000
    )

    it.effect(
      "a crash between load and index build is repaired by the next run; start-up leaves a marked index alone",
      () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const index = yield* VectorIndex
          const sources = yield* Sources
          const backfill = yield* Backfill
          // The state a bulk run leaves when it dies after loading: index dropped, mark present.
          yield* index.beginBulk(yield* sources.get("atoms"))
          yield* seed(50, 800)
          expect(yield* indexRow).toEqual([])
          // Start-up (ensuring the sources) must not build it behind the bulk run's back.
          yield* Layer.build(Sources.layer).pipe(Effect.scoped)
          expect(yield* indexRow).toEqual([])
          const status = (yield* index.describe()).find((i) => i.source === "atoms")!
          expect(status.bulkMark).toMatch(/bulk_loading/)
          // A small run (below the threshold) still finishes the interrupted bulk load.
          const job = yield* backfill.run({ entityTypes: ["atoms"] })
          expect(job.bulkTypes).toEqual(["atoms"])
          expect(job.succeeded).toBe(50)
          const [after] = yield* indexRow
          expect(after.valid).toBe(true)
          expect(yield* sql`SELECT * FROM autoembed.index_state`).toEqual([])
        }),
      120_000
    )

    it.effect(
      "an invalid index is replaced; reindex applies changed settings and halfvec",
      () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const index = yield* VectorIndex
          // What a failed CREATE INDEX CONCURRENTLY leaves behind.
          yield* sql`UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'autoembed_atoms_hnsw'::regclass`
          expect((yield* indexRow)[0].valid).toBe(false)
          expect(yield* index.reindex({ sources: ["atoms"] })).toEqual(["atoms"])
          expect((yield* indexRow)[0].valid).toBe(true)
          expect(yield* index.reindex()).toEqual([])

          // Other settings: the same database seen through a configuration with m = 8 and halfvec.
          const config = yield* AutoEmbedConfig
          const changed = VectorIndex.Default.pipe(
            Layer.provide(AutoEmbedConfig.make({ ...config, hnswM: 8, indexKind: "halfvec" })),
            Layer.provide(Layer.succeed(SqlClient.SqlClient, sql)),
            Layer.provide(Layer.succeed(Sources, yield* Sources)),
            Layer.provide(Layer.succeed(Database, yield* Database))
          )
          const rebuilt = yield* Effect.flatMap(VectorIndex, (v) => v.reindex({ sources: ["atoms"] })).pipe(
            Effect.provide(changed)
          )
          expect(rebuilt).toEqual(["atoms"])
          const [row] = yield* indexRow
          expect(row.valid).toBe(true)
          expect(row.def).toMatch(/halfvec/)
          expect(row.def).toMatch(/m='?8/)
          // Search configured for halfvec uses that index.
          const halfSearch = Search.Default.pipe(
            Layer.provide(AutoEmbedConfig.make({ ...config, hnswM: 8, indexKind: "halfvec" })),
            Layer.provide(Layer.succeed(SqlClient.SqlClient, sql)),
            Layer.provide(Layer.succeed(Sources, yield* Sources)),
            Layer.provide(Layer.succeed(EmbeddingProvider, yield* EmbeddingProvider)),
            Layer.provide(Layer.succeed(PipelineMetrics, yield* PipelineMetrics))
          )
          const found = yield* Effect.flatMap(
            Search,
            (s) => s.search({ q: "deploy latency", mode: "vector", limit: 5, types: ["atoms"] })
          ).pipe(
            Effect.provide(halfSearch)
          )
          expect(found.results).toHaveLength(5)
        }),
      120_000
    )
  })
})

describe("index build memory", () => {
  const config = { indexKind: "vector" as const, dimensions: 1024, hnswM: 16, indexBuildMemoryMb: 1024 }
  it(
    "asks for what the graph needs (pgvector 0.8.0 measured 4,883 bytes a row at 1024-d, m = 16), " +
      "within the configured bound",
    () => {
      // 10,000 rows: 47 MB of graph; below the 64 MB floor.
      expect(buildMemoryPlan(10_000, config)).toEqual({ rows: 10_000, neededMb: 47, memoryMb: 64, fits: true })
      // 100,000 rows: 467 MB, asked for with a fifth spare.
      expect(buildMemoryPlan(100_000, config)).toEqual({ rows: 100_000, neededMb: 467, memoryMb: 561, fits: true })
      // A million rows do not fit in 1 GB: the build is capped and the caller warns.
      expect(buildMemoryPlan(1_000_000, config)).toMatchObject({ neededMb: 4670, memoryMb: 1024, fits: false })
      // halfvec halves the vector part; a larger m costs 32 bytes a unit.
      expect(buildMemoryPlan(1_000_000, { ...config, indexKind: "halfvec" }).neededMb).toBe(2717)
      expect(buildMemoryPlan(1_000_000, { ...config, hnswM: 32 }).neededMb).toBe(5158)
    }
  )
})
