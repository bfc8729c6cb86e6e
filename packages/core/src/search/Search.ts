import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import { Effect, Schema } from "effect"
import { AutoEmbedConfig } from "../config/AutoEmbedConfig.js"
import { PipelineMetrics } from "../pipeline/PipelineMetrics.js"
import { EmbeddingProvider, type ProviderError } from "../providers/EmbeddingProvider.js"
import type { FilterColumn } from "../sources/SourceCatalog.js"
import { type Source, Sources } from "../sources/Sources.js"
import { sourceSql } from "../sources/SourceSql.js"
import { ActiveModel } from "../storage/ActiveModel.js"
import { stateTables } from "../storage/State.js"
import { vectorLiteral } from "../storage/VectorEncoding.js"
import { QueryCache } from "./QueryCache.js"

/**
 * Hybrid fusion: a convex combination of min-max normalised scores (Bruch et al. 2022),
 * α·vector + (1 − α)·text, α = AUTOEMBED_HYBRID_VECTOR_WEIGHT (0.4); a row absent from a list has 0
 * there. Chosen by `pnpm eval` (bench/results/eval.md, Local provider): with BM25 as the text leg,
 * SciFact nDCG@10 0.685 against 0.635 for reciprocal rank fusion (k 60) and 0.671 for the best
 * weighted RRF; Cranfield 0.522 against 0.512. RRF weighs a weak leg's ranks as much as a strong
 * one's; scores keep how sure each leg is. Result scores lie in 0..1.
 */
export const fuseByScore = (
  vector: ReadonlyArray<Candidate>,
  text: ReadonlyArray<Candidate>,
  alpha: number
): Array<Candidate> => {
  const normalised = (list: ReadonlyArray<Candidate>) => {
    const max = Math.max(...list.map((c) => c.score))
    const min = Math.min(...list.map((c) => c.score))
    return new Map(list.map((c) => [c.id, max > min ? (c.score - min) / (max - min) : 1]))
  }
  const v = normalised(vector)
  const t = normalised(text)
  return [...new Set([...v.keys(), ...t.keys()])].map((id) => ({
    id,
    score: alpha * (v.get(id) ?? 0) + (1 - alpha) * (t.get(id) ?? 0)
  }))
}

/** Candidates per list and source in hybrid mode: max(limit × factor, minimum). */
export const HYBRID_DEPTH_FACTOR = 4
export const HYBRID_DEPTH_MIN = 50

/**
 * Text ranking: `ts_rank(tsv, query, 1 | 32)`. Flag 1 divides by 1 + log(document length), so long
 * abstracts do not win by size; flag 32 maps a rank r to r / (r + 1), so text scores lie in 0..1 in
 * the order of the raw rank. Measured on SciFact (bench/results/eval.md): ts_rank beats ts_rank_cd
 * by 0.2 nDCG@10 with OR queries (cover density rewards terms near each other, which an OR of a
 * claim's words rarely has), and the length flag adds about 0.01.
 */
const TEXT_RANK_NORMALIZATION = 1 | 32

/** Characters of content returned per result. */
export const SNIPPET_CHARS = 300

export const SearchMode = Schema.Literal("vector", "hybrid", "text")
export type SearchMode = typeof SearchMode.Type

const Query = Schema.Trim.pipe(
  Schema.minLength(1, { message: () => "q must not be empty or blank" }),
  Schema.maxLength(1000, { message: () => "q must be at most 1000 characters" })
)
const Limit = Schema.Int.pipe(
  Schema.between(1, 100, { message: () => "limit must be a whole number from 1 to 100" })
)
const Types = Schema.Array(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(63))).pipe(
  Schema.minItems(1, { message: () => "types must name at least one source" }),
  Schema.maxItems(20)
)
const TopicId = Schema.Int.pipe(Schema.positive({ message: () => "topic_id must be a positive whole number" }))
const AtomType = Schema.String.pipe(
  Schema.minLength(1, { message: () => "atom_type must not be empty" }),
  Schema.maxLength(50, { message: () => "atom_type must be at most 50 characters" })
)
/** ISO 8601 date or date-time ("2024-05-01", "2024-05-01T10:00:00Z"); other formats Date.parse accepts are refused. */
const Since = Schema.compose(
  Schema.String.pipe(
    Schema.pattern(/^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?$/, {
      message: () => "since must be an ISO 8601 date such as 2024-05-01 or 2024-05-01T10:00:00Z"
    })
  ),
  Schema.Date
)
/**
 * Filters on a source's declared filter columns: `column` (equality) or `column.gte|gt|lte|lt`
 * (numbers and dates). Values are strings, checked against the column's type at run time.
 */
const FilterKey = Schema.String.pipe(
  Schema.pattern(/^[^.\u0000]{1,63}(\.(eq|gte|gt|lte|lt))?$/, {
    message: () => "filter keys are a column name, optionally followed by .eq, .gte, .gt, .lte or .lt"
  })
)
const Filter = Schema.Record({
  key: FilterKey,
  value: Schema.String.pipe(Schema.maxLength(200, { message: () => "a filter value must be at most 200 characters" }))
})
  .pipe(Schema.filter((f) => Object.keys(f).length <= 20 || "at most 20 filters"))

/** Every score is in -1..1 (cosine) or 0..1 (text, hybrid). */
const MinScore = Schema.Number.pipe(Schema.between(-1, 1, { message: () => "min_score must be a number from -1 to 1" }))

/** A search, as the API's JSON, the CLI and library callers give it. */
export const SearchRequest = Schema.Struct({
  q: Query,
  limit: Schema.optionalWith(Limit, { default: () => 10 }),
  mode: Schema.optionalWith(SearchMode, { default: () => "hybrid" as const }),
  /** Source names; unknown ones fail with SearchInvalid at run time (sources are registered at start-up). */
  types: Schema.optional(Types),
  topic_id: Schema.optional(TopicId),
  /** Only atoms have a type: when set, only the atoms source is searched. */
  atom_type: Schema.optional(AtomType),
  since: Schema.optional(Since),
  min_score: Schema.optional(MinScore),
  /** Equality and range filters on declared filter columns ({"chat_id": "42", "sent_at.gte": "2024-05-01"}). */
  filter: Schema.optional(Filter)
})
export type SearchRequest = typeof SearchRequest.Type
/** What callers pass before defaults are applied. */
export type SearchInput = typeof SearchRequest.Encoded

const CommaList = Schema.transform(Schema.String, Schema.Array(Schema.String), {
  strict: true,
  decode: (s) => s.split(",").map((t) => t.trim()).filter((t) => t !== ""),
  encode: (a) => a.join(",")
})
/** Plain decimal digits only: NumberFromString is Number(), which also takes 0x10, +5, " 5", 5.0 and 1e3. */
const digits = (pattern: RegExp, message: string) =>
  Schema.String.pipe(Schema.pattern(pattern, { message: () => message }))
const IntDigits = (name: string) =>
  digits(/^-?\d{1,15}$/, `${name} must be a whole number in decimal digits, such as 10`)
const DecimalDigits = (name: string) =>
  digits(/^-?(\d{1,15}(\.\d{1,15})?|\.\d{1,15})$/, `${name} must be a decimal number such as 0.5`)
const fromDigits = <A, R>(text: Schema.Schema<string>, schema: Schema.Schema<A, number, R>) =>
  Schema.compose(Schema.compose(text, Schema.NumberFromString), schema)

const QueryFields = Schema.Struct({
  ...SearchRequest.fields,
  limit: Schema.optionalWith(fromDigits(IntDigits("limit"), Limit), { default: () => 10 }),
  types: Schema.optional(Schema.compose(CommaList, Types)),
  topic_id: Schema.optional(fromDigits(IntDigits("topic_id"), TopicId)),
  min_score: Schema.optional(fromDigits(DecimalDigits("min_score"), MinScore))
})

/**
 * The query-string form (`?q=...&types=atoms,messages&limit=10&filter.chat_id=42`): same fields,
 * numbers and lists as strings, and each `filter.<key>` parameter one filter.
 */
export const SearchParams = Schema.transform(
  Schema.Record({ key: Schema.String, value: Schema.String }),
  Schema.typeSchema(Schema.Record({ key: Schema.String, value: Schema.Unknown })),
  {
    strict: true,
    decode: (query) => {
      const out: Record<string, unknown> = {}
      const filter: Record<string, string> = {}
      for (const [key, value] of Object.entries(query)) {
        if (key.startsWith("filter.")) filter[key.slice("filter.".length)] = value
        else out[key] = value
      }
      if (Object.keys(filter).length > 0) out.filter = filter
      return out
    },
    encode: (params) => {
      const { filter, ...rest } = params as { filter?: Record<string, string> }
      const out: Record<string, string> = {}
      for (const [k, v] of Object.entries(rest)) out[k] = String(v)
      for (const [k, v] of Object.entries(filter ?? {})) out[`filter.${k}`] = v
      return out
    }
  }
).pipe(Schema.compose(QueryFields, { strict: false }))
export type SearchParams = Readonly<Record<string, string>>
/** The query-string fields one by one (the OpenAPI document lists them; filters are `filter.<key>`). */
export const SearchQueryFields = QueryFields

export const SearchResult = Schema.Struct({
  type: Schema.String,
  id: Schema.Union(Schema.Number, Schema.String),
  /** Cosine similarity (vector), normalised rank (text) or normalised fused score (hybrid). */
  score: Schema.Number,
  title: Schema.NullOr(Schema.String),
  content: Schema.String,
  topic_id: Schema.NullOr(Schema.Union(Schema.Number, Schema.String)),
  created_at: Schema.NullOr(Schema.String)
})
export type SearchResult = typeof SearchResult.Type

export const SearchResponse = Schema.Struct({
  query: Schema.String,
  mode: SearchMode,
  model: Schema.String,
  results: Schema.Array(SearchResult),
  /**
   * Set when a hybrid search answered from its text half alone because the provider could not
   * embed the query (outage, rate limit): "vector leg unavailable: <reason>".
   */
  degraded: Schema.optional(Schema.String)
})
export type SearchResponse = typeof SearchResponse.Type

/** The search cannot run as asked (unknown type, a filter that contradicts the types). */
export class SearchInvalid extends Schema.TaggedError<SearchInvalid>()("SearchInvalid", {
  message: Schema.String
}) {}

export interface SearchOptions {
  /**
   * Bypass the HNSW index (sequential scan, exact cosine order): the ground truth for recall
   * measurements and latency comparisons. Not for production traffic.
   */
  readonly exact?: boolean
  /** Full-text ranking: BM25 (default) or PostgreSQL's ts_rank, which `pnpm eval` compares it with. */
  readonly textRanking?: "bm25" | "ts_rank"
}

/** A text query in a source's language: the tsquery that selects rows, the lexemes BM25 scores. */
interface TextQuery {
  readonly tsquery: string
  readonly lexemes: ReadonlyArray<string>
}

export interface Candidate {
  readonly id: string
  readonly score: number
}

interface HydratedRow {
  readonly id: string
  readonly title: string | null
  readonly content: string | null
  readonly topic_id: unknown
  readonly created_at: unknown
}

interface Ranked extends Candidate {
  readonly source: Source
}

/** Integer-typed keys come back as numbers, everything else (uuid, text) as strings. */
const INTEGER_TYPES = new Set(["smallint", "integer", "bigint"])

const snippet = (text: string | null): string => {
  if (text === null) return ""
  const flat = text.replace(/\s+/g, " ").trim()
  if (flat.length <= SNIPPET_CHARS) return flat
  const cut = flat.slice(0, SNIPPET_CHARS)
  const space = cut.lastIndexOf(" ")
  return (space > SNIPPET_CHARS * 0.6 ? cut.slice(0, space) : cut) + "…"
}

const isoOf = (value: unknown): string | null => {
  if (value === null || value === undefined) return null
  const date = value instanceof Date ? value : new Date(String(value))
  return Number.isNaN(date.getTime()) ? String(value) : date.toISOString()
}

const keyOf = (value: unknown): number | string | null => {
  if (value === null || value === undefined) return null
  if (typeof value === "number") return value
  const s = String(value)
  return /^-?\d{1,15}$/.test(s) ? Number(s) : s
}

/** Users who type quotes, OR or -word get web-search syntax; plain text matches any of its words. */
const usesWebSyntax = (q: string): boolean => /"|\bOR\b|(?:^|\s)-[\p{L}\p{N}]/u.test(q)

type FilterOp = "eq" | "gte" | "gt" | "lte" | "lt"

const FILTER_VALUE: Record<FilterColumn["kind"], { readonly pattern: RegExp; readonly what: string }> = {
  integer: { pattern: /^-?\d{1,18}$/, what: "a whole number" },
  number: { pattern: /^-?(\d{1,30}(\.\d{1,30})?|\.\d{1,30})$/, what: "a number" },
  date: {
    pattern: /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?)?$/,
    what: "an ISO 8601 date such as 2024-05-01 or 2024-05-01T10:00:00Z"
  },
  boolean: { pattern: /^(true|false)$/, what: "true or false" },
  text: { pattern: /^[^\u0000]*$/, what: "text" }
}

/** A filter value must suit its column: a bad one is the caller's mistake (422), never a database error. */
const checkFilter = (declared: FilterColumn, f: { column: string; op: FilterOp; value: string }) => {
  if (declared.kind === "text" || declared.kind === "boolean") {
    if (f.op !== "eq") {
      return Effect.fail(
        new SearchInvalid({ message: `filter.${f.column} is ${declared.type}: it takes equality only, not .${f.op}` })
      )
    }
  }
  const rule = FILTER_VALUE[declared.kind]
  return rule.pattern.test(f.value)
    ? Effect.void
    : Effect.fail(
      new SearchInvalid({ message: `filter.${f.column}${f.op === "eq" ? "" : `.${f.op}`} must be ${rule.what}` })
    )
}

const byScore = (a: Ranked, b: Ranked) =>
  b.score - a.score || (a.source.name < b.source.name ? -1 : a.source.name > b.source.name ? 1 : 0) ||
  (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)

/**
 * Semantic search over every source: vector (HNSW, cosine), full text, or both fused by reciprocal
 * rank fusion. Only rows embedded by the current provider and model are searched, in every mode,
 * so results never mix models and the three modes search the same rows.
 */
export class Search extends Effect.Service<Search>()("@autoembed/core/Search", {
  dependencies: [QueryCache.Default, ActiveModel.Default],
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const sources = yield* Sources
    const provider = yield* EmbeddingProvider
    const config = yield* AutoEmbedConfig
    const metrics = yield* PipelineMetrics
    const cache = yield* QueryCache
    const modelKey = (yield* ActiveModel).key
    const st = stateTables(sql, config.stateSchema)
    const { id, idType, table, text } = sourceSql(sql)
    // Config values are validated integers; they still pass through Math.trunc before reaching SQL text.
    const efSearch = String(Math.trunc(config.efSearch))

    const idList = (s: Source, ids: ReadonlyArray<string>) => sql`${ids}::text[]::${idType(s)}[]`

    /** The filters a request puts on a source, checked against its declared filter columns. */
    const requestedFilters = (request: SearchRequest) => {
      const list: Array<{ column: string; op: FilterOp; value: string }> = []
      for (const [key, value] of Object.entries(request.filter ?? {})) {
        const [column, op = "eq"] = key.split(".") as [string, FilterOp | undefined]
        list.push({ column, op, value })
      }
      return list
    }

    /** The sources a request searches, after its filters; fails on unknown or contradictory types. */
    const resolveSources = (request: SearchRequest) =>
      Effect.gen(function*() {
        const asked = request.types === undefined ? undefined : [...new Set(request.types)]
        for (const name of asked ?? []) {
          if (!sources.names.includes(name)) {
            return yield* new SearchInvalid({
              message: `Unknown type "${name}"; known types: ${sources.names.join(", ")}`
            })
          }
        }
        let names = asked ?? sources.names
        if (request.atom_type !== undefined) {
          if (!sources.names.includes("atoms")) {
            return yield* new SearchInvalid({ message: "atom_type filters atoms, but no atoms source is registered" })
          }
          if (!names.includes("atoms")) {
            return yield* new SearchInvalid({
              message: "atom_type filters atoms only; add atoms to types or drop atom_type"
            })
          }
          names = ["atoms"]
        }
        const filters = requestedFilters(request)
        for (const f of filters) {
          const declaring = sources.all.filter((s) =>
            names.includes(s.name) && s.filters.some((d) => d.column === f.column)
          )
          if (declaring.length === 0) {
            return yield* new SearchInvalid({
              message: `No ${
                asked ? "requested " : ""
              }source declares the filter column "${f.column}"; add it to "filters" in the source's configuration`
            })
          }
          for (const s of declaring) yield* checkFilter(s.filters.find((d) => d.column === f.column)!, f)
        }
        return sources.all.filter((s) =>
          names.includes(s.name) &&
          (request.topic_id === undefined || s.topicColumn !== undefined) &&
          (request.since === undefined || s.createdAtColumn !== undefined) &&
          filters.every((f) => s.filters.some((d) => d.column === f.column))
        )
      })

    const comparison = { eq: "=", gte: ">=", gt: ">", lte: "<=", lt: "<" } as const

    /**
     * Rows this search may see: embedded by the current model (autoembed's bookkeeping `ae_r`) and
     * matching the filters on the user's table `t`.
     */
    const filters = (s: Source, request: SearchRequest): Fragment => {
      const clauses: Array<Fragment> = [sql`ae_r.source = ${s.name}`, sql`ae_r.model = ${modelKey}`]
      if (s.storage.kind === "column") clauses.push(sql`t.${sql(s.storage.column)} IS NOT NULL`)
      if (request.topic_id !== undefined && s.topicColumn) {
        clauses.push(sql`t.${sql(s.topicColumn)} = ${request.topic_id}`)
      }
      if (request.since !== undefined && s.createdAtColumn) {
        clauses.push(sql`t.${sql(s.createdAtColumn)} >= ${request.since.toISOString()}::timestamptz`)
      }
      if (request.atom_type !== undefined) clauses.push(sql`t.type = ${request.atom_type}`)
      for (const f of requestedFilters(request)) {
        const declared = s.filters.find((d) => d.column === f.column)!
        clauses.push(
          declared.kind === "text"
            ? sql`t.${sql(f.column)}::text = ${f.value}`
            : sql`t.${sql(f.column)} ${sql.literal(comparison[f.op])} CAST(${f.value} AS ${sql.literal(declared.type)})`
        )
      }
      return sql.and(clauses)
    }

    /** How the index orders: its operator, on a halfvec cast when it is built on one. */
    const order = (s: Source, column: Fragment, vector: string) => {
      const op = sql.literal(s.index.operator)
      const halfvec = s.index.owned ? config.indexKind === "halfvec" : s.index.halfvec
      const dims = sql.literal(String(Math.trunc(s.dimensions)))
      return halfvec
        ? sql`${column}::halfvec(${dims}) ${op} ${vector}::halfvec(${dims})`
        : sql`${column} ${op} ${vector}::vector`
    }

    /**
     * Nearest rows by the expression the HNSW index is built on, so the planner can serve the ORDER
     * BY from the index; the score is always the exact cosine similarity of the stored vector.
     */
    const vectorQuery = (s: Source, request: SearchRequest, vector: string, depth: number) => {
      const from = s.storage.kind === "column"
        ? sql`${table(s)} t JOIN ${st.rows} ae_r ON ae_r.source = ${s.name} AND ae_r.row_id = t.${id(s)}::text`
        : sql`${st.vectors(s.name)} ae_v JOIN ${table(s)} t ON t.${id(s)} = ae_v.id
            JOIN ${st.rows} ae_r ON ae_r.source = ${s.name} AND ae_r.row_id = ae_v.id::text`
      const column = s.storage.kind === "column" ? sql`t.${sql(s.storage.column)}` : sql`ae_v.embedding`
      return sql<{ id: string; score: number }>`
        SELECT t.${id(s)}::text AS id, 1 - (${column} <=> ${vector}::vector) AS score
        FROM ${from}
        WHERE ${filters(s, request)}
        ORDER BY ${order(s, column, vector)}
        LIMIT ${depth}`
    }

    /**
     * Okapi BM25 over the source's corpus statistics (autoembed.bm25_stats and bm25_terms, kept by
     * triggers on autoembed.rows): for each query lexeme t in a matching row,
     * idf(t) · tf·(k1+1) / (tf + k1·(1 − b + b·len/avglen)), idf(t) = ln(1 + (N − df + 0.5)/(df + 0.5))
     * (Lucene's, never negative). tf is the lexeme's number of positions, len the row's. Text mode
     * shows a score s as s/(s+1): in 0..1, in BM25's order; hybrid fuses s itself.
     */
    const bm25Query = (s: Source, request: SearchRequest, query: TextQuery, depth: number) => {
      const k1 = sql`${s.bm25.k1}::float8`
      const b = sql`${s.bm25.b}::float8`
      // Only the query's lexemes of a row's tsvector: marked with weight A and filtered on it, both in
      // C (autoembed's tsvectors carry no weights), instead of unnesting every lexeme of every match.
      const queryTerms = sql`unnest(ts_filter(setweight(ae_m.tsv, 'A', ${query.lexemes}::text[]), '{a}'))`
      return sql<{ id: string; score: number }>`
        WITH ae_n AS MATERIALIZED (
          SELECT docs::float8 AS docs, greatest(total_length::float8 / greatest(docs, 1), 1) AS avglen FROM ${st.bm25Stats} WHERE source = ${s.name}
        ), ae_k AS MATERIALIZED (
          SELECT k.lexeme, ln(1 + (ae_n.docs - k.df + 0.5) / (k.df + 0.5)) AS idf
          FROM ${st.bm25Terms} k, ae_n WHERE k.source = ${s.name} AND k.lexeme = ANY(${query.lexemes}::text[]) AND k.df > 0
        ), ae_m AS (
          SELECT t.${id(s)}::text AS id, ae_r.tsv, ae_r.tsv_length
          FROM ${st.rows} ae_r JOIN ${table(s)} t ON t.${id(s)} = ae_r.row_id::${idType(s)}
          WHERE ae_r.tsv @@ ${query.tsquery}::tsquery AND ${filters(s, request)}
        )
        SELECT ae_s.id, ae_s.bm25 AS score FROM (
          SELECT ae_m.id, sum(ae_k.idf * u.tf * (${k1} + 1) / (u.tf + ${k1} * (1 - ${b} + ${b} * ae_m.tsv_length / ae_n.avglen))) AS bm25
          FROM ae_m CROSS JOIN ae_n
          CROSS JOIN LATERAL (SELECT lexeme, coalesce(array_length(positions, 1), 1) AS tf FROM ${queryTerms}) u
          JOIN ae_k ON ae_k.lexeme = u.lexeme
          GROUP BY ae_m.id
        ) ae_s
        ORDER BY ae_s.bm25 DESC, ae_s.id
        LIMIT ${depth}`
    }

    /** PostgreSQL's length-normalised `ts_rank` (the ranking before BM25; `pnpm eval` compares them). */
    const tsRankQuery = (s: Source, request: SearchRequest, query: TextQuery, depth: number) =>
      sql<{ id: string; score: number }>`
        SELECT t.${id(s)}::text AS id, ts_rank(ae_r.tsv, ${query.tsquery}::tsquery, ${
        sql.literal(String(TEXT_RANK_NORMALIZATION))
      }) AS score
        FROM ${st.rows} ae_r JOIN ${table(s)} t ON t.${id(s)} = ae_r.row_id::${idType(s)}
        WHERE ae_r.tsv @@ ${query.tsquery}::tsquery AND ${filters(s, request)}
        ORDER BY score DESC, t.${id(s)}
        LIMIT ${depth}`

    /**
     * The query as a tsquery in text form ("" when it has no indexable word), and its lexemes (what
     * BM25 scores). Plain words are ORed, as BM25 expects: a row needs only some of them. Quotes,
     * `-word` or `or` switch to websearch_to_tsquery: phrases, exclusions, alternatives.
     */
    const toTextQuery = (q: string, language: string) =>
      Effect.map(
        sql<{ q: string; lexemes: ReadonlyArray<string> }>`
          SELECT ${
          usesWebSyntax(q)
            ? sql`websearch_to_tsquery(${language}::regconfig, ${q})::text`
            // plainto_tsquery parses and stems safely; its ANDs become ORs so a document needs only some of the words.
            : sql`replace(plainto_tsquery(${language}::regconfig, ${q})::text, ' & ', ' | ')`
        } AS q,
            ARRAY(SELECT DISTINCT unnest(tsvector_to_array(to_tsvector(${language}::regconfig, ${q})))) AS lexemes`,
        (rows): TextQuery => ({ tsquery: rows[0]?.q ?? "", lexemes: rows[0]?.lexemes ?? [] })
      )

    const embedQuery = (q: string) =>
      cache.getOrCompute(modelKey, "query", q, Effect.map(provider.embed([q], "query"), (vectors) => vectors[0]))

    /**
     * Transaction-local settings of the vector queries: ef_search from config, iterative scans so
     * filters still fill `limit`, and no sequential scan. pgvector's cost model does not count
     * de-TOASTing vectors over 2 kB (1024-d is 4 kB), so the planner picks a sequential scan and a
     * sort where the HNSW index is 7× faster (SciFact, 5,183 rows: p50 69 ms vs 9 ms, see
     * bench/results/eval.md). Index paths stay open, so a selective filter with a btree (topic_id,
     * created_at) can still be sorted exactly when the planner finds that cheaper.
     */
    const indexSettings = (options: SearchOptions) =>
      options.exact
        ? sql`SELECT set_config('enable_indexscan', 'off', true)`
        : sql`SELECT set_config('hnsw.ef_search', ${efSearch}, true), set_config('hnsw.iterative_scan', 'relaxed_order', true),
            set_config('enable_seqscan', 'off', true)`

    /** Display columns of the ranked rows; the user's table is the only relation in scope of the text. */
    const hydrate = (s: Source, ids: ReadonlyArray<string>) => {
      const nullCol = sql.literal("NULL")
      const content = s.contentColumn ? sql`${sql(s.contentColumn)}::text` : text(s)
      return sql<HydratedRow>`
        SELECT t.${id(s)}::text AS id,
          ${s.titleColumn ? sql`${sql(s.titleColumn)}::text` : nullCol} AS title,
          left(${content}, ${SNIPPET_CHARS * 2}) AS content,
          ${s.topicColumn ? sql(s.topicColumn) : nullCol} AS topic_id,
          ${s.createdAtColumn ? sql(s.createdAtColumn) : nullCol} AS created_at
        FROM ${table(s)} t
        WHERE t.${id(s)} = ANY(${idList(s, ids)})`
    }

    type QueryVector = { readonly vector?: string; readonly degraded?: string }
    /**
     * The query's vector. Hybrid search does not need it to answer: when the provider cannot embed
     * the query, it answers from its text half and says so; vector search fails (503 in the API).
     */
    const queryVector = (request: SearchRequest): Effect.Effect<QueryVector, ProviderError> =>
      embedQuery(request.q).pipe(
        Effect.map((v): QueryVector => ({ vector: vectorLiteral(v) })),
        Effect.catchTag("ProviderError", (e) =>
          request.mode === "hybrid"
            ? Effect.as(
              Effect.logWarning(`autoembed: hybrid search answered from text only (${e.reason}: ${e.message})`),
              { degraded: `vector leg unavailable: ${e.reason}: ${e.message}`.slice(0, 500) }
            )
            : Effect.fail(e))
      )

    const run = (request: SearchRequest, options: SearchOptions) =>
      Effect.gen(function*() {
        const searched = yield* resolveSources(request)
        const wantsVector = request.mode !== "text"
        const wantsText = request.mode !== "vector"
        const depth = request.mode === "hybrid"
          ? Math.max(request.limit * HYBRID_DEPTH_FACTOR, HYBRID_DEPTH_MIN)
          : request.limit
        const embedded = wantsVector && searched.length > 0 ? yield* queryVector(request) : undefined
        const vector = embedded?.vector
        const degraded = embedded?.degraded
        const textQueries = new Map<string, TextQuery>()
        if (wantsText) {
          for (const language of new Set(searched.map((s) => s.language))) {
            textQueries.set(language, yield* toTextQuery(request.q, language))
          }
        }
        const ranking = options.textRanking === "ts_rank" ? tsRankQuery : bm25Query
        // ts_rank's scores are in 0..1 already (flag 32); BM25's are shown as s/(s+1).
        const shownText = (c: Candidate): Candidate =>
          options.textRanking === "ts_rank" ? c : { id: c.id, score: c.score / (c.score + 1) }

        // Only the vector queries need the transaction: it scopes their SET LOCAL settings. (Under
        // READ COMMITTED one transaction would not give the statements one snapshot anyway.)
        const vectorLists = vector === undefined
          ? searched.map((): Array<Candidate> => [])
          : yield* sql.withTransaction(
            Effect.zipRight(
              indexSettings(options),
              Effect.forEach(searched, (s) =>
                Effect.map(vectorQuery(s, request, vector, depth), (rows) =>
                  // relaxed_order may return neighbours slightly out of order: re-sort by the exact score.
                  rows.map((r) => ({ id: r.id, score: Number(r.score) })).sort((a, b) => b.score - a.score)))
            )
          )
        const textLists = yield* Effect.forEach(searched, (s) => {
          const query = textQueries.get(s.language)
          return query !== undefined && query.tsquery !== ""
            ? Effect.map(ranking(s, request, query, depth), (rows) =>
              rows.map((r) => ({ id: r.id, score: Number(r.score) })))
            : Effect.succeed<Array<Candidate>>([])
        })

        const top = searched.flatMap((s, i) => {
          const scored = request.mode === "vector"
            ? vectorLists[i]
            : request.mode === "text"
            ? textLists[i].map(shownText)
            : fuseByScore(vectorLists[i], textLists[i], config.hybridVectorWeight)
          return scored
            .filter((c) =>
              request.min_score === undefined || c.score >= request.min_score
            )
            .map((c): Ranked => ({ ...c, source: s }))
            .sort(byScore)
            .slice(0, request.limit)
        }).sort(byScore).slice(0, request.limit)

        const rows = new Map<string, HydratedRow>()
        for (const s of searched) {
          const ids = top.filter((r) => r.source === s).map((r) => r.id)
          if (ids.length === 0) continue
          for (const row of yield* hydrate(s, ids)) rows.set(`${s.name}\u0000${row.id}`, row)
        }
        const ranked = top.flatMap((r): Array<SearchResult> => {
          const row = rows.get(`${r.source.name}\u0000${r.id}`)
          // A row deleted since it was ranked is left out.
          if (row === undefined) return []
          return [{
            type: r.source.name,
            id: INTEGER_TYPES.has(r.source.idType) ? Number(r.id) : r.id,
            score: r.score,
            title: row.title,
            content: snippet(row.content),
            topic_id: keyOf(row.topic_id),
            created_at: isoOf(row.created_at)
          }]
        })
        const response: SearchResponse = { query: request.q, mode: request.mode, model: modelKey, results: ranked }
        return degraded === undefined ? response : { ...response, degraded }
      })

    /** Runs a decoded search request (see `SearchRequest`). */
    const search = Effect.fn("Search.search")(function*(request: SearchRequest, options: SearchOptions = {}) {
      yield* Effect.annotateCurrentSpan({ mode: request.mode, limit: request.limit, model: modelKey })
      const started = performance.now()
      const response = yield* run(request, options)
      yield* metrics.recordSearch(performance.now() - started)
      return response
    })

    /**
     * The plan of the vector candidate query of each searched source, with the same settings as a
     * search (used by tests and the evaluation to prove the HNSW index serves the query).
     */
    const explain = Effect.fn("Search.explain")(function*(request: SearchRequest, options: SearchOptions = {}) {
      const searched = yield* resolveSources(request)
      const vector = vectorLiteral(yield* embedQuery(request.q))
      return yield* sql.withTransaction(
        Effect.gen(function*() {
          yield* indexSettings(options)
          return yield* Effect.forEach(searched, (s) =>
            Effect.map(
              sql<{ "QUERY PLAN": string }>`EXPLAIN ${vectorQuery(s, request, vector, request.limit)}`,
              (rows) => ({ type: s.name, indexName: s.index.name, plan: rows.map((r) => r["QUERY PLAN"]).join("\n") })
            ))
        })
      )
    })

    return { search, explain, model: modelKey } as const
  })
}) {}

/** Decodes an unknown request (e.g. parsed JSON) into a `SearchRequest`; a ParseError names the bad field. */
export const decodeSearchRequest = Schema.decodeUnknown(SearchRequest)
/** Decodes query-string parameters into a `SearchRequest`. */
export const decodeSearchParams = Schema.decodeUnknown(SearchParams)
