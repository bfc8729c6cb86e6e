import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import { Effect, Schema } from "effect"
import { AutoEmbedConfig } from "./AutoEmbedConfig.js"
import { EmbeddingProvider } from "./EmbeddingProvider.js"
import { modelKeyOf } from "./EmbeddingStore.js"
import { vectorLiteral } from "./VectorEncoding.js"
import { PipelineMetrics } from "./PipelineMetrics.js"
import { QueryCache } from "./QueryCache.js"
import { type Source, Sources } from "./Sources.js"

/**
 * Reciprocal rank fusion constant (Cormack et al. 2009): a document at rank r in a list adds
 * 1 / (RRF_K + r). 60 is the published default (bench/eval.ts measures alternatives).
 */
export const RRF_K = 60

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

/** The text search configuration of the built-in tsvector columns (see migrations/0001_schema.ts). */
const TEXT_CONFIG = "english"

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
  min_score: Schema.optional(MinScore)
})
export type SearchRequest = typeof SearchRequest.Type
/** What callers pass before defaults are applied. */
export type SearchInput = typeof SearchRequest.Encoded

const CommaList = Schema.transform(Schema.String, Schema.Array(Schema.String), {
  strict: true,
  decode: (s) => s.split(",").map((t) => t.trim()).filter((t) => t !== ""),
  encode: (a) => a.join(",")
})
const fromString = <A, R>(schema: Schema.Schema<A, number, R>) => Schema.compose(Schema.NumberFromString, schema)

/** The query-string form (`?q=...&types=atoms,messages&limit=10`): same fields, numbers and lists as strings. */
export const SearchParams = Schema.Struct({
  ...SearchRequest.fields,
  limit: Schema.optionalWith(fromString(Limit), { default: () => 10 }),
  types: Schema.optional(Schema.compose(CommaList, Types)),
  topic_id: Schema.optional(fromString(TopicId)),
  min_score: Schema.optional(fromString(MinScore))
})
export type SearchParams = typeof SearchParams.Encoded

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
  results: Schema.Array(SearchResult)
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
}

interface Candidate {
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

const byScore = (a: Ranked, b: Ranked) =>
  b.score - a.score || (a.source.name < b.source.name ? -1 : a.source.name > b.source.name ? 1 : 0) ||
  (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)

/**
 * Semantic search over every source: vector (HNSW, cosine), full text, or both fused by reciprocal
 * rank fusion. Only rows embedded by the current provider and model are searched, in every mode,
 * so results never mix models and the three modes search the same rows.
 */
export class Search extends Effect.Service<Search>()("@autoembed/core/Search", {
  dependencies: [QueryCache.Default],
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const sources = yield* Sources
    const provider = yield* EmbeddingProvider
    const config = yield* AutoEmbedConfig
    const metrics = yield* PipelineMetrics
    const cache = yield* QueryCache
    const modelKey = modelKeyOf(provider)
    // Config values are validated integers; they still pass through Math.trunc before reaching SQL text.
    const dims = sql.literal(String(Math.trunc(config.dimensions)))
    const efSearch = String(Math.trunc(config.efSearch))

    const table = (s: Source) => sql(`${s.schema}.${s.tableName}`)
    const idList = (s: Source, ids: ReadonlyArray<string>) => sql`${ids}::text[]::${sql.literal(s.idType)}[]`

    /** The sources a request searches, after its filters; fails on unknown or contradictory types. */
    const resolveSources = (request: SearchRequest) =>
      Effect.gen(function*() {
        const asked = request.types === undefined ? undefined : [...new Set(request.types)]
        for (const name of asked ?? []) {
          if (!sources.names.includes(name)) {
            return yield* new SearchInvalid({ message: `Unknown type "${name}"; known types: ${sources.names.join(", ")}` })
          }
        }
        let names = asked ?? sources.names
        if (request.atom_type !== undefined) {
          if (!sources.names.includes("atoms")) {
            return yield* new SearchInvalid({ message: "atom_type filters atoms, but no atoms source is registered" })
          }
          if (!names.includes("atoms")) {
            return yield* new SearchInvalid({ message: "atom_type filters atoms only; add atoms to types or drop atom_type" })
          }
          names = ["atoms"]
        }
        return sources.all.filter((s) =>
          names.includes(s.name) &&
          (request.topic_id === undefined || s.topicColumn !== undefined) &&
          (request.since === undefined || s.createdAtColumn !== undefined) &&
          (request.mode !== "text" || s.tsvectorColumn !== undefined)
        )
      })

    /**
     * Rows this search may see: embedded by the current model and matching the filters.
     * The model test is written so the btree on embedding_model cannot serve it: that index exists
     * for the sweeper's stale-row scans, and without statistics (PGlite never runs autovacuum) the
     * planner guesses the model matches a handful of rows and fetches them all to sort instead of
     * walking the HNSW index. Nearly every row matches it, so it is a filter, not an access path.
     */
    const filters = (s: Source, request: SearchRequest): Fragment => {
      const clauses: Array<Fragment> = [sql`(embedding_model || '') = ${modelKey}`, sql`embedding IS NOT NULL`]
      if (request.topic_id !== undefined && s.topicColumn) clauses.push(sql`${sql(s.topicColumn)} = ${request.topic_id}`)
      if (request.since !== undefined && s.createdAtColumn) {
        clauses.push(sql`${sql(s.createdAtColumn)} >= ${request.since.toISOString()}::timestamptz`)
      }
      if (request.atom_type !== undefined) clauses.push(sql`type = ${request.atom_type}`)
      return sql.and(clauses)
    }

    /**
     * Nearest rows by the expression the HNSW index is built on (see `hnswIndexSql`), so the
     * planner can serve the ORDER BY from the index; the score is always the exact cosine
     * similarity of the stored vector (1 - cosine distance).
     */
    const vectorQuery = (s: Source, request: SearchRequest, vector: string, depth: number) => {
      const order = config.indexKind === "halfvec"
        ? sql`embedding::halfvec(${dims}) <=> ${vector}::halfvec(${dims})`
        : sql`embedding <=> ${vector}::vector`
      return sql<{ id: string; score: number }>`
        SELECT ${sql(s.idColumn)}::text AS id, 1 - (embedding <=> ${vector}::vector) AS score
        FROM ${table(s)}
        WHERE ${filters(s, request)}
        ORDER BY ${order}
        LIMIT ${depth}`
    }

    const textQuery = (s: Source, request: SearchRequest, tsquery: string, depth: number) => {
      const tsv = sql(s.tsvectorColumn!)
      return sql<{ id: string; score: number }>`
        SELECT ${sql(s.idColumn)}::text AS id, ts_rank(${tsv}, ${tsquery}::tsquery, ${sql.literal(String(TEXT_RANK_NORMALIZATION))}) AS score
        FROM ${table(s)}
        WHERE ${tsv} @@ ${tsquery}::tsquery AND ${filters(s, request)}
        ORDER BY score DESC, ${sql(s.idColumn)}
        LIMIT ${depth}`
    }

    /** The query as a tsquery in text form ("" when it has no searchable word). */
    const toTsquery = (q: string) =>
      Effect.map(
        usesWebSyntax(q)
          ? sql<{ q: string }>`SELECT websearch_to_tsquery(${TEXT_CONFIG}::regconfig, ${q})::text AS q`
          : // plainto_tsquery parses and stems safely; its ANDs become ORs so a document needs only some of the words.
            sql<{ q: string }>`SELECT replace(plainto_tsquery(${TEXT_CONFIG}::regconfig, ${q})::text, ' & ', ' | ') AS q`,
        (rows) => rows[0]?.q ?? ""
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

    const fuse = (lists: ReadonlyArray<ReadonlyArray<Candidate>>): Array<Candidate> => {
      const scores = new Map<string, number>()
      for (const list of lists) {
        list.forEach((c, rank) => scores.set(c.id, (scores.get(c.id) ?? 0) + 1 / (RRF_K + rank + 1)))
      }
      // Divided by the best possible sum (rank 1 in both lists), so a fused score lies in 0..1.
      const best = 2 / (RRF_K + 1)
      return [...scores].map(([id, score]) => ({ id, score: score / best }))
    }

    const hydrate = (s: Source, ids: ReadonlyArray<string>) => {
      const nullCol = sql.literal("NULL")
      const content = s.contentColumn ? sql`${sql(s.contentColumn)}::text` : sql.literal(`(${s.text})`)
      return sql<HydratedRow>`
        SELECT ${sql(s.idColumn)}::text AS id,
          ${s.titleColumn ? sql`${sql(s.titleColumn)}::text` : nullCol} AS title,
          left(${content}, ${SNIPPET_CHARS * 2}) AS content,
          ${s.topicColumn ? sql(s.topicColumn) : nullCol} AS topic_id,
          ${s.createdAtColumn ? sql(s.createdAtColumn) : nullCol} AS created_at
        FROM ${table(s)}
        WHERE ${sql(s.idColumn)} = ANY(${idList(s, ids)})`
    }

    const run = (request: SearchRequest, options: SearchOptions) =>
      Effect.gen(function*() {
        const searched = yield* resolveSources(request)
        const wantsVector = request.mode !== "text"
        const wantsText = request.mode !== "vector"
        const depth = request.mode === "hybrid" ? Math.max(request.limit * HYBRID_DEPTH_FACTOR, HYBRID_DEPTH_MIN) : request.limit
        const vector = wantsVector && searched.length > 0 ? vectorLiteral(yield* embedQuery(request.q)) : undefined
        const tsquery = wantsText && searched.some((s) => s.tsvectorColumn) ? yield* toTsquery(request.q) : ""

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
        const textLists = yield* Effect.forEach(searched, (s) =>
          tsquery !== "" && s.tsvectorColumn
            ? Effect.map(textQuery(s, request, tsquery, depth), (rows) => rows.map((r) => ({ id: r.id, score: Number(r.score) })))
            : Effect.succeed<Array<Candidate>>([]))

        const top = searched.flatMap((s, i) => {
          const scored = request.mode === "vector" ? vectorLists[i] : request.mode === "text" ? textLists[i] : fuse([vectorLists[i], textLists[i]])
          return scored
            .filter((c) => request.min_score === undefined || c.score >= request.min_score)
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
        return { query: request.q, mode: request.mode, model: modelKey, results: ranked } satisfies SearchResponse
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
              (rows) => ({ type: s.name, indexName: s.indexName, plan: rows.map((r) => r["QUERY PLAN"]).join("\n") })
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
