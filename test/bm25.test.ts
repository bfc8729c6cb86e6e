import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { QueryCache } from "../packages/core/src/search/QueryCache.js"
import { fuseByScore, Search, SearchRequest } from "../packages/core/src/search/Search.js"
import { rng } from "./fakes/FakeProviderServer.js"
import { pipelineLayer, waitUntilIdle } from "./support/Pipeline.js"
import { tier } from "./support/TestDatabase.js"

const Live = Search.DefaultWithoutDependencies.pipe(
  Layer.provideMerge(QueryCache.Default),
  Layer.provideMerge(pipelineLayer({ overrides: { sweepIntervalMs: 3_600_000 } }))
)

const text = (q: string) =>
  Effect.flatMap(
    Search,
    (s) => s.search(Schema.decodeUnknownSync(SearchRequest)({ q, mode: "text", types: ["messages"] }))
  )
/** The API reports a BM25 score s as s/(s+1); this is s again. */
const bm25Of = (score: number) => score / (1 - score)

const DOCS = ["cat cat dog", "dog bird", "cat fish fish fish", "bird bird"]

describe("hybrid fusion by score", () => {
  it("0.4 · min-max(vector) + 0.6 · min-max(text); a row missing from a list has 0 there", () => {
    const vector = [{ id: "a", score: 0.9 }, { id: "b", score: 0.7 }, { id: "c", score: 0.5 }]
    const text = [{ id: "c", score: 12 }, { id: "d", score: 8 }, { id: "a", score: 4 }]
    const fused = Object.fromEntries(fuseByScore(vector, text, 0.4).map((c) => [c.id, c.score]))
    // vector: a 1, b 0.5, c 0; text: c 1, d 0.5, a 0.
    expect(fused.a).toBeCloseTo(0.4, 10)
    expect(fused.b).toBeCloseTo(0.2, 10)
    expect(fused.c).toBeCloseTo(0.6, 10)
    expect(fused.d).toBeCloseTo(0.3, 10)
    // One leg only (the provider is down): the text order, scaled.
    expect(fuseByScore([], text, 0.4).map((c) => c.id)).toEqual(["c", "d", "a"])
  })
})

describe(`BM25 (${tier()})`, () => {
  layer(Live, { timeout: 60_000, excludeTestServices: true })((it) => {
    it.effect("a hand-computed example: exact scores and order", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`INSERT INTO messages (content) SELECT unnest(${DOCS}::text[])`
        expect(yield* waitUntilIdle()).toBe(0)
        const response = yield* text("cat dog")
        // N = 4 documents of lengths 3, 2, 4, 2: avglen 2.75. df(cat) = df(dog) = 2, so both have
        // idf = ln(1 + (4 − 2 + 0.5)/(2 + 0.5)) = ln 2 = 0.693147. k1 0.9, b 0.4.
        // "cat cat dog" (len 3, K = 0.9·(0.6 + 0.4·3/2.75) = 0.932727):
        //    cat 0.693147·2·1.9/(2 + K) = 0.898131, dog 0.693147·1.9/(1 + K) = 0.681405 → 1.579536
        // "dog bird" (len 2, K = 0.801818): dog 0.693147·1.9/1.801818 = 0.730917
        // "cat fish fish fish" (len 4, K = 1.063636): cat 0.693147·1.9/2.063636 = 0.638184
        // "bird bird" has neither word and is not a result.
        expect(response.results.map((r) => r.content)).toEqual(["cat cat dog", "dog bird", "cat fish fish fish"])
        const scores = response.results.map((r) => bm25Of(r.score))
        expect(scores[0]).toBeCloseTo(1.579536, 5)
        expect(scores[1]).toBeCloseTo(0.730917, 5)
        expect(scores[2]).toBeCloseTo(0.638184, 5)
      }))

    it.effect("phrases, exclusions and stop-word-only queries", () =>
      Effect.gen(function*() {
        // A quoted phrase needs its words next to each other, in order.
        expect((yield* text("\"cat dog\"")).results.map((r) => r.content)).toEqual(["cat cat dog"])
        expect((yield* text("\"dog cat\"")).results).toEqual([])
        // -word excludes rows that have it.
        expect((yield* text("cat -fish")).results.map((r) => r.content)).toEqual(["cat cat dog"])
        // or: either word (websearch syntax).
        expect((yield* text("fish or bird")).results.map((r) => r.content).sort()).toEqual([
          "bird bird",
          "cat fish fish fish",
          "dog bird"
        ])
        // Only stop words: nothing to search for, an empty answer rather than an error.
        expect((yield* text("the of and")).results).toEqual([])
        expect((yield* text("-")).results).toEqual([])
      }))

    it.effect("statistics stay equal to a recomputation over random inserts, edits and deletes", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const random = rng(20261205)
        const words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa", "lambda", "sigma"]
        const sentence = () =>
          Array.from({ length: 1 + Math.floor(random() * 12) }, () => words[Math.floor(random() * words.length)]).join(
            " "
          )
        const sources = ["prop_a", "prop_b"]
        let next = 0
        for (let step = 0; step < 60; step++) {
          const source = sources[Math.floor(random() * sources.length)]
          const ids = yield* sql<{ row_id: string }>`SELECT row_id FROM autoembed.rows WHERE source = ${source}`
          const some = ids.filter(() => random() < 0.3).map((r) => r.row_id)
          const action = random()
          if (action < 0.4 || ids.length === 0) {
            const fresh = Array.from(
              { length: 1 + Math.floor(random() * 5) },
              () => [`r${next++}`, sentence()] as const
            )
            yield* sql`INSERT INTO autoembed.rows (source, row_id, model, hash, tsv)
              SELECT ${source}, r, 'm', 'h', to_tsvector('english', t) FROM unnest(${fresh.map((f) => f[0])}::text[], ${
              fresh.map((f) => f[1])
            }::text[]) AS x(r, t)`
          } else if (action < 0.6) {
            // Upsert, as a vector write does: new rows and changed ones in one statement.
            const rows = [...some, `r${next++}`]
            yield* sql`INSERT INTO autoembed.rows AS s (source, row_id, model, hash, tsv)
              SELECT ${source}, r, 'm', 'h2', to_tsvector('english', ${sentence()}) FROM unnest(${rows}::text[]) r
              ON CONFLICT (source, row_id) DO UPDATE SET tsv = EXCLUDED.tsv, hash = EXCLUDED.hash`
          } else if (action < 0.75) {
            // Another model's vector for the same text: the tsvector does not change.
            yield* sql`UPDATE autoembed.rows SET model = 'other'
              WHERE source = ${source} AND row_id = ANY(${some}::text[])`
          } else if (action < 0.85) {
            yield* sql`UPDATE autoembed.rows SET tsv = NULL WHERE source = ${source} AND row_id = ANY(${some}::text[])`
          } else {
            yield* sql`DELETE FROM autoembed.rows WHERE source = ${source} AND row_id = ANY(${some}::text[])`
          }
          const kept = yield* sql<{ source: string; docs: number; total_length: number }>`
            SELECT source, docs::int AS docs, total_length::int AS total_length FROM autoembed.bm25_stats
            WHERE source = ANY(${sources}::text[]) AND docs <> 0 ORDER BY source`
          const fresh = yield* sql<{ source: string; docs: number; total_length: number }>`
            SELECT source, count(*)::int AS docs, sum(autoembed.tsv_length(tsv))::int AS total_length
            FROM autoembed.rows
            WHERE source = ANY(${sources}::text[]) AND tsv IS NOT NULL GROUP BY source ORDER BY source`
          expect(kept).toEqual(fresh)
          const keptTerms = yield* sql<{ source: string; lexeme: string; df: number }>`
            SELECT source, lexeme, df::int AS df FROM autoembed.bm25_terms
            WHERE source = ANY(${sources}::text[]) AND df <> 0 ORDER BY source, lexeme`
          const freshTerms = yield* sql<{ source: string; lexeme: string; df: number }>`
            SELECT source, lexeme, count(*)::int AS df FROM autoembed.rows, unnest(tsvector_to_array(tsv)) AS lexeme
            WHERE source = ANY(${sources}::text[]) AND tsv IS NOT NULL GROUP BY source, lexeme ORDER BY source, lexeme`
          expect(keptTerms).toEqual(freshTerms)
        }
      }))
  })
})
