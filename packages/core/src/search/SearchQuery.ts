import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import { Effect } from "effect"
import { AutoEmbedConfig } from "../config/AutoEmbedConfig.js"
import { entityOf, type Source } from "../sources/SourceCatalog.js"
import { sourceSql } from "../sources/SourceSql.js"
import { ActiveModel } from "../storage/ActiveModel.js"
import { stateTables } from "../storage/State.js"
import type { Candidate } from "./Fusion.js"
import type { SearchOptions, SearchRequest } from "./Search.js"

/**
 * Text ranking: `ts_rank(tsv, query, 1 | 32)`. Flag 1 divides by 1 + log(document length), so long
 * abstracts do not win by size; flag 32 maps a rank r to r / (r + 1), so text scores lie in 0..1 in
 * the order of the raw rank. Measured on SciFact (bench/results/eval.md): ts_rank beats ts_rank_cd
 * by 0.2 nDCG@10 with OR queries (cover density rewards terms near each other, which an OR of a
 * claim's words rarely has), and the length flag adds about 0.01.
 */
const TEXT_RANK_NORMALIZATION = 1 | 32

/** A text query in a source's language: the tsquery that selects rows, the lexemes BM25 scores. */
export interface TextQuery {
  readonly tsquery: string
  readonly lexemes: ReadonlyArray<string>
}

export type FilterOp = "eq" | "gte" | "gt" | "lte" | "lt"

export interface RequestedFilter {
  readonly column: string
  readonly op: FilterOp
  readonly value: string
}

/** The filters a request puts on its sources (`column` or `column.op` keys). */
export const requestedFilters = (request: SearchRequest): Array<RequestedFilter> =>
  Object.entries(request.filter ?? {}).map(([key, value]) => {
    const [column, op = "eq"] = key.split(".") as [string, FilterOp | undefined]
    return { column, op, value }
  })

/** Users who type quotes, OR or -word get web-search syntax; plain text matches any of its words. */
const usesWebSyntax = (q: string): boolean => /"|\bOR\b|(?:^|\s)-[\p{L}\p{N}]/u.test(q)

const comparison = { eq: "=", gte: ">=", gt: ">", lte: "<=", lt: "<" } as const

const toCandidates = (rows: ReadonlyArray<{ id: string; score: number }>): Array<Candidate> =>
  rows.map((r) => ({ id: r.id, score: Number(r.score) }))

/** What the SQL of a search is built from. */
const makeQueryContext = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const config = yield* AutoEmbedConfig
  return {
    sql,
    config,
    modelKey: (yield* ActiveModel).key,
    st: stateTables(sql, config.stateSchema),
    ...sourceSql(sql),
    // Config values are validated integers; they still pass through Math.trunc before reaching SQL text.
    efSearch: String(Math.trunc(config.efSearch))
  }
})
type QueryContext = Effect.Effect.Success<typeof makeQueryContext>

/**
 * Rows this search may see: embedded by the current model (autoembed's bookkeeping `ae_r`) and
 * matching the filters on the user's table `t`.
 */
const filters = (c: QueryContext, s: Source, request: SearchRequest): Fragment => {
  const clauses: Array<Fragment> = [
    c.sql`ae_r.source = ${s.name}`,
    c.sql`ae_r.model = ${s.set?.modelKey ?? c.modelKey}`
  ]
  if (s.storage.kind === "column") clauses.push(c.sql`t.${c.sql(s.storage.column)} IS NOT NULL`)
  if (request.topicId !== undefined && s.topicColumn) {
    clauses.push(c.sql`t.${c.sql(s.topicColumn)} = ${request.topicId}`)
  }
  if (request.since !== undefined && s.createdAtColumn) {
    clauses.push(c.sql`t.${c.sql(s.createdAtColumn)} >= ${request.since.toISOString()}::timestamptz`)
  }
  if (request.atomType !== undefined) clauses.push(c.sql`t.type = ${request.atomType}`)
  for (const f of requestedFilters(request)) {
    const declared = s.filters.find((d) => d.column === f.column)!
    clauses.push(
      declared.kind === "text"
        ? c.sql`t.${c.sql(f.column)}::text = ${f.value}`
        : c.sql`t.${c.sql(f.column)} ${c.sql.literal(comparison[f.op])} CAST(${f.value} AS ${
          c.sql.literal(declared.type)
        })`
    )
  }
  return c.sql.and(clauses)
}

/** How the index orders: its operator, on a halfvec cast when it is built on one. */
const order = (c: QueryContext, s: Source, column: Fragment, vector: string) => {
  const op = c.sql.literal(s.index.operator)
  const halfvec = s.index.owned ? c.config.indexKind === "halfvec" : s.index.halfvec
  const dims = c.sql.literal(String(Math.trunc(s.dimensions)))
  return halfvec
    ? c.sql`${column}::halfvec(${dims}) ${op} ${vector}::halfvec(${dims})`
    : c.sql`${column} ${op} ${vector}::vector`
}

/**
 * Nearest rows by the expression the HNSW index is built on, so the planner can serve the ORDER
 * BY from the index; the score is always the exact cosine similarity of the stored vector.
 */
const vectorQuery = (c: QueryContext, s: Source, request: SearchRequest, vector: string, depth: number) => {
  const from = s.storage.kind === "column"
    ? c.sql`${c.table(s)} t JOIN ${c.st.rows} ae_r ON ae_r.source = ${s.name} AND ae_r.row_id = t.${c.id(s)}::text`
    : c.sql`${c.st.vectors(s.name)} ae_v JOIN ${c.table(s)} t ON t.${c.id(s)} = ae_v.id
        JOIN ${c.st.rows} ae_r ON ae_r.source = ${s.name} AND ae_r.row_id = ae_v.id::text`
  const column = s.storage.kind === "column" ? c.sql`t.${c.sql(s.storage.column)}` : c.sql`ae_v.embedding`
  return c.sql<{ id: string; score: number }>`
    SELECT t.${c.id(s)}::text AS id, 1 - (${column} <=> ${vector}::vector) AS score
    FROM ${from}
    WHERE ${filters(c, s, request)}
    ORDER BY ${order(c, s, column, vector)}
    LIMIT ${depth}`
}

/**
 * Okapi BM25 over the source's corpus statistics (autoembed.bm25_stats and bm25_terms, kept by
 * triggers on autoembed.rows): for each query lexeme t in a matching row,
 * idf(t) · tf·(k1+1) / (tf + k1·(1 − b + b·len/avglen)), idf(t) = ln(1 + (N − df + 0.5)/(df + 0.5))
 * (Lucene's, never negative). tf is the lexeme's number of positions, len the row's. Text mode
 * shows a score s as s/(s+1): in 0..1, in BM25's order; hybrid fuses s itself.
 */
const bm25Query = (c: QueryContext, s: Source, request: SearchRequest, query: TextQuery, depth: number) => {
  const k1 = c.sql`${s.bm25.k1}::float8`
  const b = c.sql`${s.bm25.b}::float8`
  // Only the query's lexemes of a row's tsvector: marked with weight A and filtered on it, both in
  // C (autoembed's tsvectors carry no weights), instead of unnesting every lexeme of every match.
  const queryTerms = c.sql`unnest(ts_filter(setweight(ae_m.tsv, 'A', ${query.lexemes}::text[]), '{a}'))`
  return c.sql<{ id: string; score: number }>`
    WITH ae_n AS MATERIALIZED (
      SELECT docs::float8 AS docs, greatest(total_length::float8 / greatest(docs, 1), 1) AS avglen
      FROM ${c.st.bm25Stats} WHERE source = ${s.name}
    ), ae_k AS MATERIALIZED (
      SELECT k.lexeme, ln(1 + (ae_n.docs - k.df + 0.5) / (k.df + 0.5)) AS idf
      FROM ${c.st.bm25Terms} k, ae_n
      WHERE k.source = ${s.name} AND k.lexeme = ANY(${query.lexemes}::text[]) AND k.df > 0
    ), ae_m AS (
      SELECT t.${c.id(s)}::text AS id, ae_r.tsv, ae_r.tsv_length
      FROM ${c.st.rows} ae_r JOIN ${c.table(s)} t ON t.${c.id(s)} = ae_r.row_id::${c.idType(s)}
      WHERE ae_r.tsv @@ ${query.tsquery}::tsquery AND ${filters(c, s, request)}
    )
    SELECT ae_s.id, ae_s.bm25 AS score FROM (
      SELECT ae_m.id,
        sum(ae_k.idf * u.tf * (${k1} + 1) / (u.tf + ${k1} * (1 - ${b} + ${b} * ae_m.tsv_length / ae_n.avglen))) AS bm25
      FROM ae_m CROSS JOIN ae_n
      CROSS JOIN LATERAL (SELECT lexeme, coalesce(array_length(positions, 1), 1) AS tf FROM ${queryTerms}) u
      JOIN ae_k ON ae_k.lexeme = u.lexeme
      GROUP BY ae_m.id
    ) ae_s
    ORDER BY ae_s.bm25 DESC, ae_s.id
    LIMIT ${depth}`
}

/** PostgreSQL's length-normalised `ts_rank` (the ranking before BM25; `pnpm eval` compares them). */
const tsRankQuery = (c: QueryContext, s: Source, request: SearchRequest, query: TextQuery, depth: number) =>
  c.sql<{ id: string; score: number }>`
    SELECT t.${c.id(s)}::text AS id, ts_rank(ae_r.tsv, ${query.tsquery}::tsquery, ${
    c.sql.literal(String(TEXT_RANK_NORMALIZATION))
  }) AS score
    FROM ${c.st.rows} ae_r JOIN ${c.table(s)} t ON t.${c.id(s)} = ae_r.row_id::${c.idType(s)}
    WHERE ae_r.tsv @@ ${query.tsquery}::tsquery AND ${filters(c, s, request)}
    ORDER BY score DESC, t.${c.id(s)}
    LIMIT ${depth}`

/**
 * The query as a tsquery in text form ("" when it has no indexable word), and its lexemes (what
 * BM25 scores). Plain words are ORed, as BM25 expects: a row needs only some of them. Quotes,
 * `-word` or `or` switch to websearch_to_tsquery: phrases, exclusions, alternatives.
 */
const textQuery = (c: QueryContext, q: string, language: string) =>
  Effect.map(
    c.sql<{ q: string; lexemes: ReadonlyArray<string> }>`
      SELECT ${
      usesWebSyntax(q)
        ? c.sql`websearch_to_tsquery(${language}::regconfig, ${q})::text`
        // plainto_tsquery parses and stems safely; its ANDs become ORs so a document needs only some of the words.
        : c.sql`replace(plainto_tsquery(${language}::regconfig, ${q})::text, ' & ', ' | ')`
    } AS q,
        ARRAY(SELECT DISTINCT unnest(tsvector_to_array(to_tsvector(${language}::regconfig, ${q})))) AS lexemes`,
    (rows): TextQuery => ({ tsquery: rows[0]?.q ?? "", lexemes: rows[0]?.lexemes ?? [] })
  )

/**
 * Transaction-local settings of the vector queries: ef_search from config, iterative scans so
 * filters still fill `limit`, and no sequential scan. pgvector's cost model does not count
 * de-TOASTing vectors over 2 kB (1024-d is 4 kB), so the planner picks a sequential scan and a
 * sort where the HNSW index is 7× faster (SciFact, 5,183 rows: p50 69 ms vs 9 ms, see
 * bench/results/eval.md). Index paths stay open, so a selective filter with a btree (topic_id,
 * created_at) can still be sorted exactly when the planner finds that cheaper.
 */
const indexSettings = ({ efSearch, sql }: QueryContext, options: SearchOptions) =>
  options.exact
    ? sql`SELECT set_config('enable_indexscan', 'off', true)`
    : sql`SELECT set_config('hnsw.ef_search', ${efSearch}, true),
        set_config('hnsw.iterative_scan', 'relaxed_order', true),
        set_config('enable_seqscan', 'off', true)`

/**
 * The vector leg: each source's nearest rows. Only the vector queries need the transaction: it
 * scopes their SET LOCAL settings. (Under READ COMMITTED one transaction would not give the
 * statements one snapshot anyway.)
 */
const vectorLists = (
  c: QueryContext,
  searched: ReadonlyArray<Source>,
  request: SearchRequest,
  vectorOf: (s: Source) => string | undefined,
  depth: number,
  options: SearchOptions
) =>
  c.sql.withTransaction(
    Effect.zipRight(
      indexSettings(c, options),
      Effect.forEach(searched, (s) => {
        const vector = vectorOf(s)
        return vector === undefined
          ? Effect.succeed<Array<Candidate>>([])
          : Effect.map(vectorQuery(c, s, request, vector, depth), (rows) =>
            // relaxed_order may return neighbours slightly out of order: re-sort by the exact score.
            toCandidates(rows).sort((a, b) => b.score - a.score))
      })
    )
  )

/** The text leg: each source's best rows for the query in its language (none for a query with no indexable word). */
const textLists = (
  c: QueryContext,
  searched: ReadonlyArray<Source>,
  request: SearchRequest,
  depth: number,
  options: SearchOptions
) =>
  Effect.gen(function*() {
    const queries = new Map<string, TextQuery>()
    for (const language of new Set(searched.map((s) => s.language))) {
      queries.set(language, yield* textQuery(c, request.q, language))
    }
    const ranking = options.textRanking === "ts_rank" ? tsRankQuery : bm25Query
    return yield* Effect.forEach(searched, (s) => {
      const query = queries.get(s.language)
      return query !== undefined && query.tsquery !== ""
        ? Effect.map(ranking(c, s, request, query, depth), toCandidates)
        : Effect.succeed<Array<Candidate>>([])
    })
  })

/** The plan of each source's vector query, with the same settings as a search. */
const explainVector = (
  c: QueryContext,
  searched: ReadonlyArray<Source>,
  request: SearchRequest,
  vectorOf: (s: Source) => string,
  options: SearchOptions
) =>
  c.sql.withTransaction(
    Effect.gen(function*() {
      yield* indexSettings(c, options)
      return yield* Effect.forEach(searched, (s) =>
        Effect.map(
          c.sql<{ "QUERY PLAN": string }>`EXPLAIN ${vectorQuery(c, s, request, vectorOf(s), request.limit)}`,
          (rows) => ({ type: entityOf(s), indexName: s.index.name, plan: rows.map((r) => r["QUERY PLAN"]).join("\n") })
        ))
    })
  )

/**
 * The SQL of a search: the vector leg (HNSW, cosine), the text leg (BM25 or ts_rank) and the
 * filters both share. Only rows embedded by the active model are seen, in every leg.
 */
export const makeSearchQuery = Effect.map(makeQueryContext, (c) => ({
  vectorLists: (
    searched: ReadonlyArray<Source>,
    request: SearchRequest,
    vectorOf: (s: Source) => string | undefined,
    depth: number,
    options: SearchOptions
  ) => vectorLists(c, searched, request, vectorOf, depth, options),
  textLists: (searched: ReadonlyArray<Source>, request: SearchRequest, depth: number, options: SearchOptions) =>
    textLists(c, searched, request, depth, options),
  explainVector: (
    searched: ReadonlyArray<Source>,
    request: SearchRequest,
    vectorOf: (s: Source) => string,
    options: SearchOptions
  ) => explainVector(c, searched, request, vectorOf, options)
}))
