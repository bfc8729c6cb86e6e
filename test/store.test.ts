import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { AutoEmbedConfig } from "../packages/core/src/config/AutoEmbedConfig.js"
import { embedLocal } from "../packages/core/src/providers/LocalProvider.js"
import { Sources } from "../packages/core/src/sources/Sources.js"
import { EmbeddingStore } from "../packages/core/src/storage/EmbeddingStore.js"
import { storeLayer } from "./support/Pipeline.js"
import { tier } from "./support/TestDatabase.js"

describe(`embedding store (${tier()})`, () => {
  layer(storeLayer(), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("a vector of content that changed meanwhile is not written; the row stays pending", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const store = yield* EmbeddingStore
        const sources = yield* Sources
        const atoms = yield* sources.get("atoms")
        const [a] = yield* sql<
          { id: number }
        >`INSERT INTO atoms (type, title, content) VALUES ('note', 'v1', 'old text') RETURNING id`
        const claimed = yield* store.claimReady(10, "test")
        expect(claimed.map((c) => c.rowId)).toEqual([String(a.id)])
        const [loaded] = yield* store.loadTexts(atoms, [String(a.id)])
        // The content changes while the old text is at the provider.
        yield* sql`UPDATE atoms SET content = 'new text' WHERE id = ${a.id}`
        const written = yield* store.writeVectors(atoms, [{
          rowId: loaded.rowId,
          hash: loaded.hash,
          vector: embedLocal(loaded.text, 256)
        }])
        expect(written).toEqual([])
        yield* store.complete(claimed)
        const queue = yield* sql<
          { version: number; locked_until: Date | null }
        >`SELECT version, locked_until FROM autoembed.queue WHERE row_id = ${String(a.id)}`
        expect(queue).toEqual([{ version: 2, locked_until: null }])
        // A second claim picks it up again, with the new text.
        const again = yield* store.claimReady(10, "test")
        const [fresh] = yield* store.loadTexts(atoms, again.map((c) => c.rowId))
        expect(fresh.text).toBe("v1\n\nnew text")
        expect(
          yield* store.writeVectors(atoms, [{
            rowId: fresh.rowId,
            hash: fresh.hash,
            vector: embedLocal(fresh.text, 256)
          }])
        ).toEqual([String(a.id)])
        yield* store.complete(again)
        const [left] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM autoembed.queue`
        expect(left.n).toBe(0)
      }))

    it.effect(
      "vectors are stored exactly as float4 (binary vector[] on PostgreSQL, text on PGlite), " +
        "each on its own row",
      () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const store = yield* EmbeddingStore
          const atoms = yield* (yield* Sources).get("atoms")
          const config = yield* AutoEmbedConfig
          const dims = config.dimensions
          yield* sql`DELETE FROM autoembed.queue`
          const inserted = yield* sql<
            { id: number }
          >`INSERT INTO atoms (type, title, content)
          SELECT 'note', 'exact', 'row ' || g FROM generate_series(1, 5) g RETURNING id`
          const loaded = yield* store.loadTexts(atoms, inserted.map((r) => String(r.id)))
          // Awkward values: tiny, huge, negative, non-terminating fractions, integers, float4 subnormals.
          const special = [1e-40, -3.4e38, 3.4e38, 1 / 3, -Math.PI, 0, 7, -1e-12, 123456.789, Number.EPSILON]
          const vectors = loaded.map((_, k) =>
            Array.from(
              { length: dims },
              (_, j) => j < special.length ? special[j] * (1 - k / 10) : Math.sin(k * 1000 + j) * 10 ** ((j % 7) - 3)
            )
          )
          const written = yield* store.writeVectors(
            atoms,
            loaded.map((r, k) => ({ rowId: r.rowId, hash: r.hash, vector: vectors[k] }))
          )
          expect(written.sort()).toEqual(loaded.map((r) => r.rowId).sort())
          const stored = yield* sql<
            { id: number; v: string }
          >`SELECT id, embedding::text AS v FROM atoms WHERE id = ANY(${inserted.map((r) => r.id)}::bigint[])`
          for (const row of stored) {
            const k = loaded.findIndex((r) => r.rowId === String(row.id))
            const back = row.v.slice(1, -1).split(",").map((x) => Math.fround(Number(x)))
            expect(back).toEqual(vectors[k].map((x) => Math.fround(x)))
          }
        })
    )

    it.effect("claims are exclusive and an expired lease is claimable again", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const store = yield* EmbeddingStore
        yield* sql`DELETE FROM autoembed.queue`
        yield* sql`INSERT INTO messages (content) SELECT 'm' || g FROM generate_series(1, 30) g`
        const a = yield* store.claimReady(20, "worker-a")
        const b = yield* store.claimReady(20, "worker-b")
        expect(a).toHaveLength(20)
        expect(b).toHaveLength(10)
        expect(new Set([...a, ...b].map((i) => i.rowId)).size).toBe(30)
        expect(yield* store.claimReady(20, "worker-c")).toHaveLength(0)
        // worker-a dies: its lease runs out.
        yield* sql`UPDATE autoembed.queue
          SET next_attempt_at = now() - interval '1 second', locked_until = now() - interval '1 second'
          WHERE locked_by = 'worker-a'`
        const c = yield* store.claimReady(50, "worker-c")
        expect(c.map((i) => i.rowId).sort()).toEqual(a.map((i) => i.rowId).sort())
        // worker-a's late completion does not remove worker-c's claim.
        yield* store.complete(a)
        const [n] = yield* sql<
          { n: number }
        >`SELECT count(*)::int AS n FROM autoembed.queue WHERE locked_by = 'worker-c'`
        expect(n.n).toBe(20)
        expect(yield* store.renew(a)).toEqual([])
      }))
  })
})
