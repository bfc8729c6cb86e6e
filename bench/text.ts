/**
 * Full-text query latency, BM25 against ts_rank, at N rows on the PostgreSQL server (issue 19).
 *
 * Data: N messages of 40–160 words drawn from a 20,000-word vocabulary with Zipf's law (rank r has
 * weight 1/r, as words in text do), inserted with triggers off and recorded in autoembed.rows with
 * their tsvector, as the workers record them (the BM25 statistics are built by its triggers in that
 * one statement, timed). Vectors are 8-d placeholders: only the text leg runs.
 *
 * Queries: Q queries of 3–6 words drawn from ranks 20–5,000 (content words, not the commonest),
 * each run through `Search.search` in text mode with BM25 and with ts_rank, alternately, after a
 * warm-up pass. Timed: the whole search (tsquery, ranking, hydration), no provider.
 *
 * Upkeep: 80 batches of 64 new rows recorded in autoembed.rows as writeVectors records them,
 * alternately with the BM25 statistics triggers enabled and disabled.
 *
 *   pnpm bench text [--rows 100000] [--queries 200]
 */
import { makeLocalProvider, modelKeyOf, QueryCache, Search, SearchRequest } from "@autoembed/core"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer, Option, Redacted, Schema } from "effect"
import {
  createScratchDatabase,
  describeServer,
  figure,
  fmt,
  goal,
  note,
  numberFlag,
  percentile,
  rng,
  runIfMain,
  storeLayer,
  writeResult
} from "./lib.js"

const DIMS = 8
const VOCABULARY = 20_000
const SYLLABLES = [
  "ka",
  "lo",
  "mi",
  "ne",
  "su",
  "ta",
  "ri",
  "po",
  "be",
  "du",
  "fe",
  "gi",
  "ho",
  "ju",
  "va",
  "ze",
  "pa",
  "ro",
  "si",
  "tu"
]

/** A pronounceable word per rank, so the English parser sees ordinary words. */
const word = (rank: number) => {
  let s = ""
  for (let n = rank + 400; n > 0; n = Math.floor(n / SYLLABLES.length)) s += SYLLABLES[n % SYLLABLES.length]
  return s + "n"
}

/** Draws ranks with weight 1/r over [from, to) by inverting the harmonic CDF approximately. */
const zipf = (random: () => number, from: number, to: number) => () => Math.floor(from * Math.pow(to / from, random()))

export const main = async (args: ReadonlyArray<string>) => {
  const rows = numberFlag(args, "rows", 100_000)
  const queries = numberFlag(args, "queries", 200)
  const scratch = await createScratchDatabase("text")
  const provider = makeLocalProvider(DIMS)
  const layer = Search.DefaultWithoutDependencies.pipe(
    Layer.provideMerge(QueryCache.Default),
    Layer.provideMerge(storeLayer({ databaseUrl: Option.some(Redacted.make(scratch.url)), dimensions: DIMS }, provider))
  )
  const random = rng(19)
  const draw = zipf(random, 1, VOCABULARY)
  const queryWord = zipf(random, 20, 5000)
  try {
    console.log(`  ${describeServer()}, ${rows} rows, ${queries} queries`)
    const result = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      const context = yield* Layer.build(layer)
      return yield* Effect.gen(function*() {
        const db = yield* SqlClient.SqlClient
        for (let start = 0; start < rows; start += 5000) {
          const texts = Array.from(
            { length: Math.min(5000, rows - start) },
            () => Array.from({ length: 40 + Math.floor(random() * 120) }, () => word(draw())).join(" ")
          )
          yield* db.withTransaction(Effect.zipRight(
            db`SET LOCAL session_replication_role = replica`,
            db`INSERT INTO messages (content, embedding) SELECT c, ${`[${
              Array(DIMS).fill(0.1).join(",")
            }]`}::vector FROM unnest(${texts}::text[]) c`
          ))
        }
        const t0 = performance.now()
        yield* db`INSERT INTO autoembed.rows (source, row_id, model, hash, tsv)
          SELECT 'messages', id::text, ${
          modelKeyOf(provider)
        }, md5(content), to_tsvector('english', content) FROM messages`
        const loadRowsS = (performance.now() - t0) / 1000
        yield* db`ANALYZE`
        const search = yield* Search
        const request = (q: string) =>
          Schema.decodeUnknownSync(SearchRequest)({ q, mode: "text", limit: 10, types: ["messages"] })
        const texts = Array.from(
          { length: queries },
          () => Array.from({ length: 3 + Math.floor(random() * 4) }, () => word(queryWord())).join(" ")
        )
        const times = { bm25: [] as Array<number>, ts_rank: [] as Array<number> }
        for (const pass of [0, 1]) {
          for (const q of texts) {
            for (
              const ranking of (pass % 2 === 0 ? ["bm25", "ts_rank"] : ["ts_rank", "bm25"]) as Array<"bm25" | "ts_rank">
            ) {
              const started = performance.now()
              yield* search.search(request(q), { textRanking: ranking })
              if (pass === 1) times[ranking].push(performance.now() - started)
            }
          }
        }
        // Statistics upkeep: batches of 64 rows recorded as writeVectors records them (an upsert of
        // the bookkeeping with the tsvector), alternately with the BM25 triggers on and off.
        const upkeep = { on: [] as Array<number>, off: [] as Array<number> }
        for (let batch = 0; batch < 80; batch++) {
          const on = batch % 2 === 0
          const texts = Array.from(
            { length: 64 },
            () => Array.from({ length: 40 + Math.floor(random() * 120) }, () => word(draw())).join(" ")
          )
          const ids = texts.map((_, i) => `upkeep-${batch}-${i}`)
          if (!on) {
            for (const op of ["insert", "update", "delete"]) {
              yield* db`ALTER TABLE autoembed.rows DISABLE TRIGGER ${db(`bm25_${op}`)}`
            }
          }
          const started = performance.now()
          yield* db`INSERT INTO autoembed.rows AS s (source, row_id, model, hash, tsv)
            SELECT 'upkeep', r, 'm', md5(c), to_tsvector('english', c)
            FROM unnest(${ids}::text[], ${texts}::text[]) AS x(r, c)
            ON CONFLICT (source, row_id) DO UPDATE SET tsv = EXCLUDED.tsv, hash = EXCLUDED.hash`
          upkeep[on ? "on" : "off"].push(performance.now() - started)
          if (!on) {
            for (const op of ["insert", "update", "delete"]) {
              yield* db`ALTER TABLE autoembed.rows ENABLE TRIGGER ${db(`bm25_${op}`)}`
            }
          }
        }
        return { loadRowsS, times, upkeep }
      }).pipe(Effect.provide(context))
    })))
    const p = (xs: Array<number>, q: number) => percentile(xs, q)
    const ratio = p(result.times.bm25, 50) / p(result.times.ts_rank, 50)
    figure(
      `text: BM25 p50 ÷ ts_rank p50 at ${rows} rows = ${fmt(ratio)} (${fmt(p(result.times.bm25, 50))} vs ${
        fmt(p(result.times.ts_rank, 50))
      } ms; p95 ${fmt(p(result.times.bm25, 95))} vs ${fmt(p(result.times.ts_rank, 95))} ms), ${goal(ratio <= 2)} (≤ 2×)`
    )
    const upkeepRatio = p(result.upkeep.on, 50) / p(result.upkeep.off, 50)
    figure(
      `text: recording a batch of 64 rows with BM25 statistics upkeep ÷ without, p50 = ${fmt(upkeepRatio)} (${
        fmt(p(result.upkeep.on, 50))
      } vs ${fmt(p(result.upkeep.off, 50))} ms)`
    )
    note(
      `recording ${rows} rows in autoembed.rows, BM25 statistics built by its triggers in the same statement: ${
        fmt(result.loadRowsS, 1)
      } s`
    )
    writeResult("text", { rows, queries, ratio, upkeepRatio, ...result })
  } finally {
    await scratch.drop()
  }
}

runIfMain(import.meta.url, main)
