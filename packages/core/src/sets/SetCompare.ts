import type * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Schema } from "effect"
import { Search, SearchRequest } from "../search/Search.js"
import type { Source } from "../sources/SourceCatalog.js"
import { sourceSql } from "../sources/SourceSql.js"
import type { CompareReport, CompareRequest, SetReport } from "./SetSchemas.js"

/** Words of a row's text a sampled query keeps: about a search box's worth. */
const SAMPLED_QUERY_WORDS = 12

const percentile = (values: ReadonlyArray<number>, p: number): number => {
  if (values.length === 0) return 0
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]
}

const round = (n: number, digits = 4) => Number(n.toFixed(digits))

/** nDCG@10 of a ranking against graded judgements (BEIR's definition: gain 2^rel − 1). */
export const ndcgAt10 = (ranked: ReadonlyArray<string>, relevant: Readonly<Record<string, number>>): number => {
  const dcg = (gains: ReadonlyArray<number>) =>
    gains.slice(0, 10).reduce((sum, g, i) => sum + (2 ** g - 1) / Math.log2(i + 2), 0)
  const ideal = dcg(Object.values(relevant).filter((g) => g > 0).sort((a, b) => b - a))
  return ideal === 0 ? 0 : dcg(ranked.map((id) => relevant[id] ?? 0)) / ideal
}

/** Share of the relevant rows found in the top 10. */
export const recallAt10 = (ranked: ReadonlyArray<string>, relevant: Readonly<Record<string, number>>): number => {
  const wanted = Object.keys(relevant).filter((id) => relevant[id] > 0)
  if (wanted.length === 0) return 0
  const top = new Set(ranked.slice(0, 10))
  return wanted.filter((id) => top.has(id)).length / wanted.length
}

/** Queries made from a random sample of the source's own rows: their first words. */
const sampleQueries = (sql: SqlClient.SqlClient, source: Source, sample: number) =>
  Effect.map(
    sql<{ q: string | null }>`
      SELECT ${sourceSql(sql).text(source)} AS q FROM ${sourceSql(sql).table(source)} t
      ORDER BY random() LIMIT ${sample}`,
    (rows) =>
      rows.flatMap((r) => {
        const q = (r.q ?? "").split(/\s+/).filter((w) => w !== "").slice(0, SAMPLED_QUERY_WORDS).join(" ")
        return q === "" ? [] : [{ text: q.slice(0, 1000), relevant: undefined }]
      })
  )

/**
 * Runs the same vector searches on two sets of one source and compares what they return: top-10
 * overlap, latency, and with judged queries nDCG@10 and recall@10; with each set's rows and sizes.
 */
export const compareSets = (
  sql: SqlClient.SqlClient,
  request: CompareRequest,
  base: Source,
  sides: readonly [SetReport, SetReport]
) =>
  Effect.gen(function*() {
    const search = yield* Search
    const given = request.queries !== undefined && request.queries.length > 0
    const queries = given ? request.queries! : yield* sampleQueries(sql, base, request.sample)
    const judged = queries.some((q) => q.relevant !== undefined)
    const latencies = [[], []] as [Array<number>, Array<number>]
    const quality = [{ ndcg: 0, recall: 0 }, { ndcg: 0, recall: 0 }]
    let overlap = 0
    for (const query of queries) {
      const ranked: Array<Array<string>> = []
      for (const [i, side] of sides.entries()) {
        const searchRequest = yield* Schema.decodeUnknown(SearchRequest)({
          q: query.text,
          limit: 10,
          mode: "vector",
          types: [base.name],
          set: side.name
        })
        const started = performance.now()
        const response = yield* search.search(searchRequest)
        latencies[i].push(performance.now() - started)
        ranked.push(response.results.map((r) => String(r.id)))
        if (query.relevant !== undefined) {
          quality[i].ndcg += ndcgAt10(ranked[i], query.relevant)
          quality[i].recall += recallAt10(ranked[i], query.relevant)
        }
      }
      const shared = ranked[0].filter((id) => ranked[1].includes(id)).length
      overlap += shared / Math.max(1, Math.min(10, Math.max(ranked[0].length, ranked[1].length)))
    }
    const n = Math.max(1, queries.length)
    const judgedCount = Math.max(1, queries.filter((q) => q.relevant !== undefined).length)
    const side = (i: 0 | 1) => ({
      name: sides[i].name,
      provider: sides[i].provider,
      model: sides[i].model,
      dimensions: sides[i].dimensions,
      embedded: sides[i].embedded,
      total: sides[i].total,
      latencyP50Ms: round(percentile(latencies[i], 0.5), 2),
      latencyP95Ms: round(percentile(latencies[i], 0.95), 2),
      storageBytes: sides[i].storageBytes,
      indexBytes: sides[i].index.sizeBytes,
      ...(judged
        ? { ndcgAt10: round(quality[i].ndcg / judgedCount), recallAt10: round(quality[i].recall / judgedCount) }
        : {})
    })
    const report: CompareReport = {
      source: base.name,
      queries: queries.length,
      querySource: given ? "given" : "sampled",
      overlapAt10: round(overlap / n),
      a: side(0),
      b: side(1)
    }
    return report
  })
