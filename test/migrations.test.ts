import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { AutoEmbedConfig } from "../packages/core/src/config/AutoEmbedConfig.js"
import { installState, uninstall } from "../packages/core/src/sources/Installer.js"
import { Sources } from "../packages/core/src/sources/Sources.js"
import { Database, DatabaseLive } from "../packages/core/src/storage/Database.js"
import { testConfig, tier } from "./support/TestDatabase.js"

const Base = DatabaseLive
const Live = Layer.provideMerge(Sources.layer, Base).pipe(Layer.provideMerge(testConfig({ dimensions: 8 })))

describe(`migrations (${tier()})`, () => {
  layer(Live, { timeout: 120_000 })((it) => {
    it.effect("installs pgvector, the tables and HNSW indexes", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const ext = yield* sql<{ extversion: string }>`SELECT extversion FROM pg_extension WHERE extname = 'vector'`
        expect(ext).toHaveLength(1)
        const indexes = yield* sql<{ indexname: string; indexdef: string }>`
          SELECT indexname, indexdef FROM pg_indexes WHERE indexdef ILIKE '%USING hnsw%' ORDER BY indexname`
        expect(indexes.map((i) => i.indexname)).toEqual(["autoembed_atoms_hnsw", "autoembed_messages_hnsw"])
        expect(indexes[0].indexdef).toContain("vector_cosine_ops")
        // autoembed's own state is in its schema, and only there.
        const tables = yield* sql<{ table_schema: string; table_name: string }>`
          SELECT table_schema, table_name FROM information_schema.tables
          WHERE table_schema = 'autoembed' ORDER BY table_name`
        expect(tables.map((t) => t.table_name)).toEqual([
          "backfill_jobs",
          "bm25_stats",
          "bm25_terms",
          "circuits",
          "index_state",
          "migrations",
          "queue",
          "rows",
          "sets",
          "sources",
          "token_ledger",
          "workers"
        ])
        const columns = yield* sql<{ column_name: string }>`
          SELECT column_name FROM information_schema.columns
          WHERE table_name = 'messages' AND table_schema = 'public' AND column_name LIKE 'embedding%'`
        expect(columns.map((c) => c.column_name)).toEqual(["embedding"])
      }))

    it.effect("a kNN query uses the HNSW index", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        // Enough rows that the planner has a reason to pick the index, plus enable_seqscan off to be sure it can.
        yield* sql`INSERT INTO atoms (type, title, content, embedding)
          SELECT 'insight', 't' || g, 'c' || g,
            ('[' || array_to_string(ARRAY[g % 7, g % 5, g % 3, 1, 2, 3, 4, g % 11], ',') || ']')::vector
          FROM generate_series(1, 300) g`
        const plan = yield* sql.withTransaction(
          Effect.gen(function*() {
            yield* sql`SET LOCAL enable_seqscan = off`
            return yield* sql<{ "QUERY PLAN": string }>`
              EXPLAIN SELECT id FROM atoms ORDER BY embedding <=> '[1,2,3,4,5,6,7,8]'::vector LIMIT 5`
          })
        )
        expect(plan.map((r) => r["QUERY PLAN"]).join("\n")).toContain("autoembed_atoms_hnsw")
        const rows = yield* sql<
          { id: number }
        >`SELECT id FROM atoms ORDER BY embedding <=> '[1,2,3,4,5,6,7,8]'::vector LIMIT 5`
        expect(rows).toHaveLength(5)
      }))

    it.effect("re-running migrations is a no-op", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const before = yield* sql`SELECT count(*)::int AS n FROM autoembed.migrations`
        yield* installState("autoembed")
        const after = yield* sql`SELECT count(*)::int AS n FROM autoembed.migrations`
        expect(after).toEqual(before)
        // Ensuring the sources again changes nothing either: the same indexes, none rebuilt (same oids).
        const indexes = sql<{ name: string; oid: number; definition: string }>`
          SELECT c.relname AS name, c.oid::int8 AS oid, pg_get_indexdef(c.oid) AS definition
          FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
          WHERE t.relname IN ('atoms', 'messages') ORDER BY c.relname`
        const indexesBefore = yield* indexes
        yield* Layer.build(Sources.layer).pipe(Effect.scoped)
        expect(yield* indexes).toEqual(indexesBefore)
        expect(indexesBefore.map((i) => i.name)).toContain("autoembed_atoms_hnsw")
        const triggers = yield* sql<
          { n: number }
        >`SELECT count(*)::int AS n FROM pg_trigger WHERE tgname LIKE 'autoembed_%'`
        expect(triggers[0].n).toBe(6)
      }))

    it.effect("inserting a row records pending work in the same transaction", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const [m] = yield* sql<{ id: number }>`INSERT INTO messages (content) VALUES ('hello') RETURNING id`
        const q = yield* sql<
          { row_id: string; version: number }
        >`SELECT row_id, version FROM autoembed.queue WHERE source = 'messages'`
        expect(q).toEqual([{ row_id: String(m.id), version: 1 }])
        yield* sql`UPDATE messages SET content = 'changed' WHERE id = ${m.id}`
        const q2 = yield* sql<{ version: number }>`SELECT version FROM autoembed.queue WHERE source = 'messages'`
        expect(q2[0].version).toBe(2)
        yield* sql`DELETE FROM messages WHERE id = ${m.id}`
        const q3 = yield* sql`SELECT 1 FROM autoembed.queue WHERE source = 'messages'`
        expect(q3).toHaveLength(0)
        const db = yield* Database
        expect(db.kind).toBe(tier())
      }))
  })

  it.effect("a dimension change is refused with a message naming the setting", () =>
    Effect.gen(function*() {
      const result = yield* Effect.gen(function*() {
        // Same database, first at 8 dimensions, then at 16.
        const shared = testConfig({ dimensions: 8 })
        const ctx = yield* Layer.build(Layer.provideMerge(Sources.layer, Base).pipe(Layer.provideMerge(shared)))
        const config = yield* Effect.provide(AutoEmbedConfig, ctx)
        const sql = yield* Effect.provide(SqlClient.SqlClient, ctx)
        const database = yield* Effect.provide(Database, ctx)
        const again = Sources.layer.pipe(
          Layer.provide(Layer.succeed(SqlClient.SqlClient, sql)),
          Layer.provide(Layer.succeed(Database, database)),
          Layer.provide(AutoEmbedConfig.make({ ...config, dimensions: 16 }))
        )
        return yield* Layer.build(again).pipe(Effect.flip)
      }).pipe(Effect.scoped)
      expect(result._tag).toBe("SourceError")
      expect(result.message).toContain(
        "public.messages.embedding is vector(8) but EMBEDDING_DIMENSIONS is 16; set EMBEDDING_DIMENSIONS=8"
      )
    }), 120_000)
})

describe(`autoembed's schema is configurable (${tier()})`, () => {
  const Custom = Layer.provideMerge(Sources.layer, DatabaseLive).pipe(
    Layer.provideMerge(testConfig({ dimensions: 8, stateSchema: "ae_state" }))
  )
  layer(Custom, { timeout: 120_000 })((it) => {
    it.effect(
      "AUTOEMBED_SCHEMA puts every table and the trigger function there, " +
        "and uninstall removes exactly that",
      () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const tables = yield* sql<
            { t: string }
          >`SELECT table_name AS t FROM information_schema.tables WHERE table_schema = 'ae_state' ORDER BY 1`
          expect(tables.map((r) => r.t)).toEqual([
            "backfill_jobs",
            "bm25_stats",
            "bm25_terms",
            "circuits",
            "index_state",
            "migrations",
            "queue",
            "rows",
            "sets",
            "sources",
            "token_ledger",
            "workers"
          ])
          expect(yield* sql`SELECT 1 FROM pg_namespace WHERE nspname = 'autoembed'`).toEqual([])
          const [m] = yield* sql<
            { id: number }
          >`INSERT INTO messages (content) VALUES ('queued in the configured schema') RETURNING id`
          expect(yield* sql`SELECT row_id FROM ae_state.queue`).toEqual([{ row_id: String(m.id) }])
          const removed = yield* uninstall("ae_state", (yield* Database).kind === "postgres")
          expect(removed.schema).toBe("ae_state")
          expect(yield* sql`SELECT 1 FROM pg_namespace WHERE nspname = 'ae_state'`).toEqual([])
          expect(yield* sql`SELECT tgname FROM pg_trigger WHERE NOT tgisinternal`).toEqual([])
          // The data stays: the built-in tables are the user's now.
          expect(yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM messages`).toEqual([{ n: 1 }])
        })
    )
  })
})
