import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Either, Fiber, Layer, Schema } from "effect"
import { decodeSearchQuery } from "../packages/api/src/contract/index.js"
import { Extraction } from "../packages/core/src/knowledge/Extraction.js"
import type { EmbeddingProviderShape } from "../packages/core/src/providers/EmbeddingProvider.js"
import { embedLocal, makeLocalProvider } from "../packages/core/src/providers/LocalProvider.js"
import { makeQueryCache, QueryCache } from "../packages/core/src/search/QueryCache.js"
import { Search, type SearchInput, SearchRequest, type SearchResponse } from "../packages/core/src/search/Search.js"
import { vectorLiteral } from "../packages/core/src/storage/VectorEncoding.js"
import { pipelineLayer, waitUntilIdle } from "./support/Pipeline.js"
import { tier } from "./support/TestDatabase.js"

const DIMS = 256

// The Local provider, counting query embeddings (the workers' document calls are not counted).
let queryCalls = 0
const local = makeLocalProvider(DIMS)
const countingProvider: EmbeddingProviderShape = {
  ...local,
  embed: (texts, kind) =>
    Effect.suspend(() => {
      if (kind === "query") queryCalls += texts.length
      return local.embed(texts, kind)
    })
}

const testLayer = Search.DefaultWithoutDependencies.pipe(
  Layer.provideMerge(QueryCache.Default),
  Layer.provideMerge(
    pipelineLayer({
      provider: countingProvider,
      // The sweeper is parked so rows inserted here with another model's vector stay as they are.
      overrides: { sweepIntervalMs: 3_600_000 }
    })
  )
)

const decode = Schema.decodeUnknownSync(SearchRequest)
const run = (input: SearchInput) => Effect.flatMap(Search, (search) => search.search(decode(input)))
/** Query-string parameters as GET /v1/search and `pnpm cli search` read them. */
const fromQuery = (params: Record<string, string>) => Effect.runSync(Effect.either(decodeSearchQuery(params)))

const ids = (r: SearchResponse) => r.results.map((x) => `${x.type}:${x.id}`)
const expectOrdered = (r: SearchResponse) => {
  for (let i = 1; i < r.results.length; i++) expect(r.results[i - 1].score).toBeGreaterThanOrEqual(r.results[i].score)
}

interface Corpus {
  readonly topics: { readonly databases: number; readonly frontend: number; readonly rare: number }
  readonly atoms: Record<string, number>
  readonly messages: Record<string, number>
}

let corpus: Corpus | undefined

/** A small hand-made corpus (plus 300 filler messages for the index tests), seeded once per file. */
const seeded = Effect.gen(function*() {
  if (corpus) return corpus
  const extraction = yield* Extraction
  const sql = yield* SqlClient.SqlClient
  const db = yield* extraction.persist({
    topics: [{ name: "databases" }],
    atoms: [
      {
        type: "problem",
        title: "Autovacuum falls behind",
        content: "Autovacuum cannot keep up with the orders table, which bloats and slows every query."
      },
      {
        type: "solution",
        title: "Tune autovacuum scale factor",
        content: "Lower autovacuum_vacuum_scale_factor on large tables so vacuum runs more often."
      },
      {
        type: "decision",
        title: "Store embeddings with pgvector",
        content: "Embeddings live in PostgreSQL with pgvector and an HNSW index."
      }
    ]
  })
  const fe = yield* extraction.persist({
    topics: [{ name: "frontend" }],
    atoms: [
      {
        type: "insight",
        title: "Bundle splitting halves load time",
        content: "Splitting the JavaScript bundle cut the page load time in half."
      },
      {
        type: "question",
        title: "Which CSS framework",
        content: "Should the dashboard move from Bootstrap to Tailwind?"
      }
    ]
  })
  const msgs = yield* extraction.ingestMessages({
    messages: [
      { content: "autovacuum is falling behind on the orders table again" },
      { content: "the dashboard CSS looks broken in Safari" },
      { content: "Ünïcödé café ☕ naïve résumé 日本語のテキスト" }
    ]
  })
  yield* extraction.persist({ messageIds: [msgs.ids[0]], topics: [{ name: "databases" }] })
  yield* extraction.persist({ messageIds: [msgs.ids[1]], topics: [{ name: "frontend" }] })
  // Filler: 300 messages, 20 of them in a "rare" topic, for the index and filter tests.
  const words = [
    "river",
    "mountain",
    "orchard",
    "lantern",
    "harbor",
    "meadow",
    "glacier",
    "canyon",
    "prairie",
    "volcano"
  ]
  const filler = yield* extraction.ingestMessages({
    messages: Array.from({ length: 300 }, (_, i) => ({
      content: `note ${i}: the ${words[i % 10]} near the ${words[(i * 7 + 3) % 10]} was ${
        words[(i * 3 + 1) % 10]
      } season ${i % 13}`
    }))
  })
  const rare = yield* extraction.persist({
    messageIds: filler.ids.filter((_, i) => i % 15 === 0),
    topics: [{ name: "rare" }]
  })
  expect(yield* waitUntilIdle()).toBe(0)
  // One atom is old: `since` must leave it out (created_at is not a watched column, no re-embedding).
  yield* sql`UPDATE atoms SET created_at = '2020-01-01T00:00:00Z' WHERE id = ${db.atomIds[1]}`
  corpus = {
    topics: { databases: db.topicIds[0], frontend: fe.topicIds[0], rare: rare.topicIds[0] },
    atoms: {
      autovacuum: db.atomIds[0],
      tune: db.atomIds[1],
      pgvector: db.atomIds[2],
      bundle: fe.atomIds[0],
      css: fe.atomIds[1]
    },
    messages: { autovacuum: msgs.ids[0], css: msgs.ids[1], unicode: msgs.ids[2] }
  }
  return corpus
})

describe(`search (${tier()})`, () => {
  layer(testLayer, { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("results are ordered by score, types are merged, and the answer has the documented shape", () =>
      Effect.gen(function*() {
        const c = yield* seeded
        for (const mode of ["vector", "text", "hybrid"] as const) {
          const r = yield* run({ q: "autovacuum falling behind on the orders table", mode, limit: 5 })
          expect(r.mode).toBe(mode)
          expect(r.model).toBe("local/local-hash-v1")
          expect(r.query).toBe("autovacuum falling behind on the orders table")
          expectOrdered(r)
          // Both the message and the atom about autovacuum are found: types are merged.
          expect(ids(r).slice(0, 3)).toContain(`atoms:${c.atoms.autovacuum}`)
          expect(ids(r).slice(0, 3)).toContain(`messages:${c.messages.autovacuum}`)
        }
        const r = yield* run({ q: "  autovacuum orders table ", mode: "vector", limit: 3 })
        expect(r.query).toBe("autovacuum orders table")
        const atom = r.results.find((x) => x.type === "atoms")!
        expect(atom).toMatchObject({
          id: c.atoms.autovacuum,
          title: "Autovacuum falls behind",
          topicId: c.topics.databases
        })
        expect(atom.content).toContain("Autovacuum cannot keep up")
        expect(new Date(atom.createdAt!).toISOString()).toBe(atom.createdAt)
        // Vector scores are cosine similarities of the stored vectors.
        const expected = embedLocal("autovacuum orders table", DIMS)
        const stored = embedLocal(
          "Autovacuum falls behind\n\n" +
            "Autovacuum cannot keep up with the orders table, which bloats and slows every query.",
          DIMS
        )
        expect(atom.score).toBeCloseTo(expected.reduce((s, x, i) => s + x * stored[i], 0), 5)
        const message = r.results.find((x) => x.type === "messages")!
        expect(message).toMatchObject({ id: c.messages.autovacuum, title: null, topicId: c.topics.databases })
      }))

    it.effect("text, vector and hybrid each put the right document first on a hand-made corpus", () =>
      Effect.gen(function*() {
        const c = yield* seeded
        const first = (r: SearchResponse) => ids(r)[0]
        expect(first(yield* run({ q: "Tailwind or Bootstrap?", mode: "text" }))).toBe(`atoms:${c.atoms.css}`)
        expect(first(yield* run({ q: "splitting the javascript bundle", mode: "vector" }))).toBe(
          `atoms:${c.atoms.bundle}`
        )
        expect(first(yield* run({ q: "javascript bundle page load time", mode: "hybrid" }))).toBe(
          `atoms:${c.atoms.bundle}`
        )
        expect(first(yield* run({ q: "pgvector HNSW embeddings", mode: "hybrid" }))).toBe(`atoms:${c.atoms.pgvector}`)
        // Text scores lie in 0..1, hybrid scores too (1 = first in both lists).
        const text = yield* run({ q: "autovacuum scale factor", mode: "text" })
        expect(text.results.every((x) => x.score > 0 && x.score < 1)).toBe(true)
        const hybrid = yield* run({ q: "autovacuum scale factor", mode: "hybrid" })
        expect(hybrid.results.every((x) => x.score > 0 && x.score <= 1)).toBe(true)
        expect(ids(hybrid)[0]).toBe(`atoms:${c.atoms.tune}`)
        expect(hybrid.results[0].score).toBeCloseTo(1, 6)
      }))

    it.effect("filters: types, topic_id, atom_type, since and min_score", () =>
      Effect.gen(function*() {
        const c = yield* seeded
        const onlyMessages = yield* run({ q: "autovacuum orders", types: ["messages"] })
        expect(onlyMessages.results.length).toBeGreaterThan(0)
        expect(onlyMessages.results.every((x) => x.type === "messages")).toBe(true)

        for (const mode of ["vector", "text", "hybrid"] as const) {
          const topic = yield* run({ q: "dashboard CSS Safari Tailwind", mode, topicId: c.topics.frontend, limit: 20 })
          expect(topic.results.length).toBeGreaterThan(0)
          expect(topic.results.every((x) => x.topicId === c.topics.frontend)).toBe(true)
        }

        const solutions = yield* run({ q: "autovacuum", atomType: "solution", mode: "vector" })
        expect(ids(solutions)).toEqual([`atoms:${c.atoms.tune}`])

        const recent = yield* run({
          q: "autovacuum scale factor vacuum",
          mode: "vector",
          since: "2021-01-01",
          limit: 50
        })
        expect(ids(recent)).not.toContain(`atoms:${c.atoms.tune}`)
        const all = yield* run({
          q: "autovacuum scale factor vacuum",
          mode: "vector",
          since: "2019-12-31T00:00:00Z",
          limit: 50
        })
        expect(ids(all)).toContain(`atoms:${c.atoms.tune}`)
        const future = yield* run({ q: "autovacuum", since: "2999-01-01" })
        expect(future.results).toEqual([])

        const loose = yield* run({ q: "autovacuum orders table", mode: "vector", limit: 50 })
        const threshold = loose.results[2].score
        const strict = yield* run({ q: "autovacuum orders table", mode: "vector", limit: 50, minScore: threshold })
        expect(strict.results.length).toBeGreaterThanOrEqual(3)
        expect(strict.results.length).toBeLessThan(loose.results.length)
        expect(strict.results.every((x) => x.score >= threshold)).toBe(true)
      }))

    it.effect(
      "the HNSW index serves the query, " +
        "and a selective filter still returns `limit` rows (iterative scan)",
      () =>
        Effect.gen(function*() {
          const c = yield* seeded
          const sql = yield* SqlClient.SqlClient
          const search = yield* Search
          const q = "the glacier near the harbor"
          // Search keeps the planner off sequential scans for its vector queries, so even this 300-row
          // table is served by the HNSW index (the query is written the way the index is built).
          const plans = yield* search.explain(decode({ q, mode: "vector", types: ["messages"] }))
          expect(plans).toHaveLength(1)
          expect(plans[0].indexName).toBe("autoembed_messages_hnsw")
          expect(plans[0].plan).toContain("Index Scan using autoembed_messages_hnsw")
          const exactPlans = yield* search.explain(decode({ q, mode: "vector", types: ["messages"] }), { exact: true })
          expect(exactPlans[0].plan).not.toContain("autoembed_messages_hnsw")

          // A selective filter: 20 of 300 messages are in the rare topic; ef_search is 100 (the default).
          // The planner would sort the 20 rows the topic index finds (exact); with sorting disabled it
          // must walk the HNSW index and post-filter, which fills `limit` only thanks to iterative scans.
          const hnswOnly = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
            sql.withTransaction(Effect.zipRight(sql`SELECT set_config('enable_sort', 'off', true)`, effect))
          const filtered = decode({ q, mode: "vector", topicId: c.topics.rare, limit: 15, types: ["messages"] })
          const forcedPlan = yield* hnswOnly(search.explain(filtered))
          expect(forcedPlan[0].plan).toContain("Index Scan using autoembed_messages_hnsw")
          const r = yield* hnswOnly(search.search(filtered))
          expect(r.results).toHaveLength(15)
          expect(r.results.every((x) => x.topicId === c.topics.rare)).toBe(true)
          expectOrdered(r)
          const exact = yield* search.search(filtered, { exact: true })
          expect(ids(r).sort()).toEqual(ids(exact).sort())
          // Without iterative scans the same walk comes back short: the assertion above is sensitive.
          const vector = vectorLiteral(embedLocal(q, DIMS))
          const short = yield* hnswOnly(Effect.zipRight(
            sql`SELECT set_config('hnsw.ef_search', '100', true), set_config('hnsw.iterative_scan', 'off', true)`,
            sql`SELECT id FROM messages WHERE topic_id = ${c.topics.rare} AND embedding IS NOT NULL
            ORDER BY embedding <=> ${vector}::vector LIMIT 15`
          ))
          expect(short.length).toBeLessThan(15)
        })
    )

    it.effect("rows of another model never appear, even when their vector is the query's", () =>
      Effect.gen(function*() {
        yield* seeded
        const sql = yield* SqlClient.SqlClient
        const q = "zeppelin hangar inspection"
        const vector = vectorLiteral(embedLocal(q, DIMS))
        // Written as another writer with another model would; triggers off so the workers leave them alone.
        const inserted = yield* sql.withTransaction(Effect.gen(function*() {
          yield* sql`SET LOCAL session_replication_role = replica`
          const a = yield* sql<{ id: number }>`INSERT INTO atoms (type, title, content, embedding)
            VALUES ('note', ${q}, ${q}, ${vector}::vector) RETURNING id`
          const m = yield* sql<{ id: number }>`INSERT INTO messages (content, embedding)
            VALUES (${q}, ${vector}::vector) RETURNING id`
          // autoembed's bookkeeping says which model wrote each vector (text included, so even the text leg
          // could match).
          yield* sql`INSERT INTO autoembed.rows (source, row_id, model, hash, tsv) VALUES
            ('atoms', ${String(a[0].id)}, 'openai/other-model', 'x', to_tsvector('english', ${q})),
            ('messages', ${String(m[0].id)}, 'ollama/other-model', 'x', to_tsvector('english', ${q}))`
          return [`atoms:${a[0].id}`, `messages:${m[0].id}`]
        }))
        for (const mode of ["vector", "text", "hybrid"] as const) {
          const r = yield* run({ q, mode, limit: 100 })
          for (const id of inserted) expect(ids(r)).not.toContain(id)
          const exact = yield* Effect.flatMap(Search, (s) => s.search(decode({ q, mode, limit: 100 }), { exact: true }))
          for (const id of inserted) expect(ids(exact)).not.toContain(id)
        }
        yield* sql`DELETE FROM atoms WHERE id IN
          (SELECT row_id::bigint FROM autoembed.rows WHERE source = 'atoms' AND model = 'openai/other-model')`
        yield* sql`DELETE FROM messages WHERE id IN
          (SELECT row_id::bigint FROM autoembed.rows WHERE source = 'messages' AND model = 'ollama/other-model')`
      }))

    it.effect("blank, unicode, emoji and SQL-like queries are handled", () =>
      Effect.gen(function*() {
        const c = yield* seeded
        const sql = yield* SqlClient.SqlClient
        for (const q of ["", "   ", "\n\t"]) {
          expect(Either.isLeft(Schema.decodeUnknownEither(SearchRequest)({ q }))).toBe(true)
          expect(Either.isLeft(fromQuery({ q }))).toBe(true)
        }
        expect(Either.isLeft(Schema.decodeUnknownEither(SearchRequest)({ q: "x".repeat(1001) }))).toBe(true)
        expect(Either.isLeft(Schema.decodeUnknownEither(SearchRequest)({}))).toBe(true)

        const unicode = yield* run({ q: "café ☕ résumé 日本語のテキスト", mode: "vector" })
        expect(ids(unicode)[0]).toBe(`messages:${c.messages.unicode}`)
        for (const mode of ["vector", "text", "hybrid"] as const) {
          for (
            const q of [
              "🔥🚀",
              "'; DROP TABLE atoms; --",
              "a & b | !c <-> d:* ( ) \\",
              "\"unterminated quote OR -minus",
              "$1 $$ %s ?",
              "\u0000".replace("\u0000", "nul") + " \u200b zero width"
            ]
          ) {
            const r = yield* run({ q, mode })
            expectOrdered(r)
          }
        }
        // Only emoji: no word for full text, so text mode finds nothing rather than failing.
        expect((yield* run({ q: "🔥🚀", mode: "text" })).results).toEqual([])
        const [n] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM atoms`
        expect(n.n).toBeGreaterThanOrEqual(5)
        // Quoted phrases use web-search syntax.
        const phrase = yield* run({ q: "\"Bootstrap to Tailwind\"", mode: "text" })
        expect(ids(phrase)).toEqual([`atoms:${c.atoms.css}`])
      }))

    it.effect("limit and the other bounds are enforced by the schema; unknown types fail clearly", () =>
      Effect.gen(function*() {
        yield* seeded
        const bad = (schema: typeof SearchRequest, input: unknown) =>
          expect(Either.isLeft(Schema.decodeUnknownEither(schema)(input)), JSON.stringify(input)).toBe(true)
        const badQuery = (params: Record<string, string>) =>
          expect(Either.isLeft(fromQuery(params)), JSON.stringify(params)).toBe(true)
        for (const limit of [0, 101, -1, 1.5, "abc", Number.NaN]) bad(SearchRequest, { q: "x", limit })
        for (const limit of ["0", "101", "-1", "abc", "1.5", ""]) badQuery({ q: "x", limit })
        bad(SearchRequest, { q: "x", mode: "fuzzy" })
        bad(SearchRequest, { q: "x", topicId: 0 })
        badQuery({ q: "x", topic_id: "abc" })
        bad(SearchRequest, { q: "x", atomType: "y".repeat(51) })
        bad(SearchRequest, { q: "x", since: "yesterday" })
        bad(SearchRequest, { q: "x", since: "2024-13-45" })
        bad(SearchRequest, { q: "x", minScore: 2 })
        bad(SearchRequest, { q: "x", types: [] })

        expect(Schema.decodeUnknownSync(SearchRequest)({ q: "x" })).toEqual({ q: "x", limit: 10, mode: "hybrid" })
        const params = Either.getOrThrow(fromQuery({
          q: " pgvector ",
          limit: "100",
          mode: "text",
          types: "atoms, messages,",
          topic_id: "3",
          min_score: "0.25",
          since: "2024-05-01"
        }))
        expect(params).toEqual({
          q: "pgvector",
          limit: 100,
          mode: "text",
          types: ["atoms", "messages"],
          topicId: 3,
          minScore: 0.25,
          since: new Date("2024-05-01")
        })

        const search = yield* Search
        const unknown = yield* Effect.flip(search.search(decode({ q: "x", types: ["atoms", "tickets"] })))
        expect(unknown._tag).toBe("SearchInvalid")
        expect(unknown.message).toContain("tickets")
        expect(unknown.message).toContain("atoms, messages")
        const contradiction = yield* Effect.flip(
          search.search(decode({ q: "x", types: ["messages"], atomType: "problem" }))
        )
        expect(contradiction._tag).toBe("SearchInvalid")
        const capped = yield* run({ q: "note season", mode: "vector", limit: 100 })
        expect(capped.results).toHaveLength(100)
      }))

    it.effect("a repeated query is embedded once (query cache)", () =>
      Effect.gen(function*() {
        yield* seeded
        const cache = yield* QueryCache
        const q = `cache probe ${Math.random()}`
        const before = queryCalls
        const first = yield* run({ q, mode: "hybrid" })
        expect(queryCalls).toBe(before + 1)
        const second = yield* run({ q: `  ${q}  `, mode: "vector" })
        expect(queryCalls).toBe(before + 1)
        expect(second.results.map((r) => r.id)).toEqual((yield* run({ q, mode: "vector" })).results.map((r) => r.id))
        expect(first.results.length).toBeGreaterThan(0)
        // Text mode needs no vector at all.
        yield* run({ q: `${q} text only`, mode: "text" })
        expect(queryCalls).toBe(before + 1)
        yield* run({ q: `${q} other`, mode: "vector" })
        expect(queryCalls).toBe(before + 2)
        const stats = yield* cache.stats
        expect(stats.hits).toBeGreaterThanOrEqual(2)
        expect(stats.size).toBeLessThanOrEqual(stats.capacity)
      }))

    it.effect("the query cache is bounded and evicts the least recently used vector", () =>
      Effect.gen(function*() {
        const cache = yield* makeQueryCache(2)
        let calls = 0
        const compute = (v: number) => Effect.sync(() => (calls++, [v]))
        yield* cache.getOrCompute("m", "query", "a", compute(1))
        yield* cache.getOrCompute("m", "query", "b", compute(2))
        yield* cache.getOrCompute("m", "query", "a", compute(9)) // hit; "a" becomes most recent
        yield* cache.getOrCompute("m", "query", "c", compute(3)) // evicts "b"
        expect(calls).toBe(3)
        expect(yield* cache.getOrCompute("m", "query", "a", compute(9))).toEqual([1])
        expect(yield* cache.getOrCompute("m", "query", "b", compute(4))).toEqual([4])
        // The model and kind are part of the key.
        expect(yield* cache.getOrCompute("other", "query", "b", compute(5))).toEqual([5])
        expect(yield* cache.getOrCompute("other", "document", "b", compute(6))).toEqual([6])
        expect((yield* cache.stats).size).toBe(2)
        // Failures are not cached.
        const failed = yield* Effect.flip(cache.getOrCompute("m", "query", "z", Effect.fail("boom")))
        expect(failed).toBe("boom")
        expect(yield* cache.getOrCompute("m", "query", "z", compute(7))).toEqual([7])
      }))

    it.effect("concurrent misses on one query make one provider call; an interrupted first caller hands over", () =>
      Effect.gen(function*() {
        const cache = yield* makeQueryCache(10)
        let calls = 0
        const slow = (v: number) => Effect.sleep("50 millis").pipe(Effect.zipRight(Effect.sync(() => (calls++, [v]))))
        const results = yield* Effect.all(
          Array.from({ length: 5 }, () => cache.getOrCompute("m", "query", "same", slow(1))),
          { concurrency: "unbounded" }
        )
        expect(results).toEqual(Array.from({ length: 5 }, () => [1]))
        expect(calls).toBe(1)
        // The same failure reaches every waiter, and is not cached.
        const failures = yield* Effect.all(
          Array.from(
            { length: 3 },
            () =>
              Effect.flip(
                cache.getOrCompute(
                  "m",
                  "query",
                  "bad",
                  Effect.sleep("20 millis").pipe(Effect.zipRight(Effect.fail("down")))
                )
              )
          ),
          { concurrency: "unbounded" }
        )
        expect(failures).toEqual(["down", "down", "down"])
        // The first caller is interrupted mid-call: the waiter computes for itself.
        const first = yield* Effect.fork(cache.getOrCompute("m", "query", "handover", slow(2)))
        yield* Effect.sleep("10 millis")
        const second = yield* Effect.fork(cache.getOrCompute("m", "query", "handover", slow(3)))
        yield* Effect.sleep("10 millis")
        yield* Fiber.interrupt(first)
        expect(yield* Fiber.join(second)).toEqual([3])
      }).pipe(Effect.timeout("5 seconds")))
  })
})
