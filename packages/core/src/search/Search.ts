import { Effect, Schema } from "effect"
import { AutoEmbedConfig } from "../config/AutoEmbedConfig.js"
import { EXIT_CODES, type Failure, FailureTypeId, type HttpAnswer } from "../Failure.js"
import { PipelineMetrics } from "../pipeline/PipelineMetrics.js"
import { type ProviderError, usageOf } from "../providers/EmbeddingProvider.js"
import { modelKeyOf } from "../providers/ProviderSpec.js"
import { SetProviders } from "../sets/SetProviders.js"
import { SetRegistry } from "../sets/SetRegistry.js"
import { entityOf, type FilterColumn, type Source } from "../sources/SourceCatalog.js"
import { Sources, type SourcesShape } from "../sources/Sources.js"
import { ActiveModel } from "../storage/ActiveModel.js"
import { EmbeddingStore } from "../storage/EmbeddingStore.js"
import { vectorLiteral } from "../storage/VectorEncoding.js"
import { type Candidate, candidateDepth, rankAcrossSources } from "./Fusion.js"
import { makeHydration } from "./Hydration.js"
import { QueryCache } from "./QueryCache.js"
import { type FilterOp, makeSearchQuery, requestedFilters } from "./SearchQuery.js"

export { type Candidate, fuseByScore, HYBRID_DEPTH_FACTOR, HYBRID_DEPTH_MIN } from "./Fusion.js"
export { SNIPPET_CHARS } from "./Hydration.js"

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

const SetName = Schema.String.pipe(
  Schema.minLength(1, { message: () => "set must name an embedding set" }),
  Schema.maxLength(200, { message: () => "set must be at most 200 characters" })
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
  topicId: Schema.optional(TopicId),
  /** Only atoms have a type: when set, only the atoms source is searched. */
  atomType: Schema.optional(AtomType),
  since: Schema.optional(Since),
  minScore: Schema.optional(MinScore),
  /** Equality and range filters on declared filter columns ({"chat_id": "42", "sent_at.gte": "2024-05-01"}). */
  filter: Schema.optional(Filter),
  /** An embedding set to search instead of each source's active one (A/B comparisons), by its name. */
  set: Schema.optional(SetName)
})
export type SearchRequest = typeof SearchRequest.Type
/** What callers pass before defaults are applied. */
export type SearchInput = typeof SearchRequest.Encoded

export const SearchResult = Schema.Struct({
  type: Schema.String,
  id: Schema.Union(Schema.Number, Schema.String),
  /** Cosine similarity (vector), normalised rank (text) or normalised fused score (hybrid). */
  score: Schema.Number,
  title: Schema.NullOr(Schema.String),
  content: Schema.String,
  topicId: Schema.NullOr(Schema.Union(Schema.Number, Schema.String)),
  createdAt: Schema.NullOr(Schema.String)
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
}) implements Failure {
  get [FailureTypeId](): FailureTypeId {
    return FailureTypeId
  }
  get exitCode() {
    return EXIT_CODES.failed
  }
  get http(): HttpAnswer {
    return { status: 422, code: "invalid_request", message: this.message }
  }
}

export interface SearchOptions {
  /**
   * Bypass the HNSW index (sequential scan, exact cosine order): the ground truth for recall
   * measurements and latency comparisons. Not for production traffic.
   */
  readonly exact?: boolean
  /** Full-text ranking: BM25 (default) or PostgreSQL's ts_rank, which `pnpm eval` compares it with. */
  readonly textRanking?: "bm25" | "ts_rank"
}

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

/** The sources a request searches, after its filters; fails on unknown or contradictory types. */
const resolveSources = (sources: SourcesShape, request: SearchRequest) =>
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
    if (request.atomType !== undefined) {
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
      (request.topicId === undefined || s.topicColumn !== undefined) &&
      (request.since === undefined || s.createdAtColumn !== undefined) &&
      filters.every((f) => s.filters.some((d) => d.column === f.column))
    )
  })

/**
 * Semantic search over every source: vector (HNSW, cosine), full text, or both fused by score
 * (see `fuseByScore`). Only rows embedded by the current provider and model are searched, in every
 * mode, so results never mix models and the three modes search the same rows. The SQL is built in
 * `SearchQuery`, the lists are fused in `Fusion`, the results' display rows loaded in `Hydration`.
 */
export class Search extends Effect.Service<Search>()("@autoembed/core/Search", {
  dependencies: [QueryCache.Default, ActiveModel.Default],
  effect: Effect.gen(function*() {
    const sources = yield* Sources
    const registry = yield* SetRegistry
    const providers = yield* SetProviders
    const config = yield* AutoEmbedConfig
    const metrics = yield* PipelineMetrics
    const cache = yield* QueryCache
    const store = yield* EmbeddingStore
    const modelKey = (yield* ActiveModel).key
    const queries = yield* makeSearchQuery
    const { hydrate } = yield* makeHydration

    /** Which vectors a source object's query vector must match: its set's model at its dimensions. */
    const embedderOf = (s: Source) => `${s.set?.modelKey ?? modelKey}:${s.dimensions}`

    const embedQuery = (s: Source, q: string) =>
      Effect.flatMap(
        Effect.mapError(providers.forSource(s), (e) =>
          new SearchInvalid({ message: `set ${s.set?.name ?? s.name} cannot be searched here: ${e.message}` })),
        (provider) =>
          cache.getOrCompute(
            embedderOf(s),
            "query",
            q,
            provider.embed([q], "query").pipe(
              // Only a call the provider answered costs tokens; a cache hit never gets here.
              Effect.tap((vectors) =>
                store.recordUsage({
                  source: entityOf(s),
                  setKey: s.name,
                  model: modelKeyOf(provider),
                  kind: "query",
                  inputs: 1,
                  usage: usageOf([q], vectors)
                })
              ),
              Effect.map((vectors) =>
                vectors[0]
              )
            )
          )
      )

    type QueryVector = { readonly vector?: string; readonly degraded?: string }
    /**
     * The query's vector for a set. Hybrid search does not need it to answer: when the provider
     * cannot embed the query, it answers from its text half and says so; vector search fails (503
     * in the API).
     */
    const queryVector = (
      s: Source,
      request: SearchRequest
    ): Effect.Effect<QueryVector, ProviderError | SearchInvalid> =>
      embedQuery(s, request.q).pipe(
        Effect.map((v): QueryVector => ({ vector: vectorLiteral(v) })),
        Effect.catchTag("ProviderError", (e) =>
          request.mode === "hybrid"
            ? Effect.as(
              Effect.logWarning(`autoembed: hybrid search answered from text only (${e.reason}: ${e.message})`),
              { degraded: `vector leg unavailable: ${e.reason}: ${e.message}`.slice(0, 500) }
            )
            : Effect.fail(e))
      )

    /** One query vector per distinct model among the searched sets (usually one). */
    const queryVectors = (searched: ReadonlyArray<Source>, request: SearchRequest) =>
      Effect.gen(function*() {
        const byEmbedder = new Map<string, QueryVector>()
        for (const s of searched) {
          if (!byEmbedder.has(embedderOf(s))) byEmbedder.set(embedderOf(s), yield* queryVector(s, request))
        }
        return {
          vectorOf: (s: Source) => byEmbedder.get(embedderOf(s))?.vector,
          degraded: [...byEmbedder.values()].find((v) => v.degraded !== undefined)?.degraded
        }
      })

    /** The set each searched type is read from: its active one, or the one the request names. */
    const targetsOf = (request: SearchRequest) =>
      Effect.flatMap(
        resolveSources(sources, request),
        (logical) => registry.searchTargets(logical.map((s) => s.name), request.set, request.types === undefined)
      )

    const run = (request: SearchRequest, options: SearchOptions) =>
      Effect.gen(function*() {
        const searched = yield* targetsOf(request)
        const depth = candidateDepth(request.mode, request.limit)
        const none = searched.map((): Array<Candidate> => [])
        const embedded = request.mode !== "text" && searched.length > 0
          ? yield* queryVectors(searched, request)
          : undefined
        const vectorLists = embedded === undefined
          ? none
          : yield* queries.vectorLists(searched, request, embedded.vectorOf, depth, options)
        const textLists = request.mode === "vector" ? none : yield* queries.textLists(searched, request, depth, options)
        const top = rankAcrossSources(searched, vectorLists, textLists, {
          mode: request.mode,
          limit: request.limit,
          minScore: request.minScore,
          vectorWeight: config.hybridVectorWeight,
          textRanking: options.textRanking ?? "bm25"
        })
        const results = yield* hydrate(searched, top)
        const models = [...new Set(searched.map((s) => s.set?.modelKey ?? modelKey))]
        const response: SearchResponse = {
          query: request.q,
          mode: request.mode,
          model: models.length === 0 ? modelKey : models.join(","),
          results
        }
        return embedded?.degraded === undefined ? response : { ...response, degraded: embedded.degraded }
      })

    /** Runs a decoded search request (see `SearchRequest`). */
    const search = Effect.fn("Search.search")(function*(request: SearchRequest, options: SearchOptions = {}) {
      yield* Effect.annotateCurrentSpan({ mode: request.mode, limit: request.limit, set: request.set ?? "active" })
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
      const searched = yield* targetsOf(request)
      const vectors = new Map<string, string>()
      for (const s of searched) vectors.set(embedderOf(s), vectorLiteral(yield* embedQuery(s, request.q)))
      return yield* queries.explainVector(searched, request, (s) => vectors.get(embedderOf(s))!, options)
    })

    return { search, explain, model: modelKey } as const
  })
}) {}

/** Decodes an unknown request (e.g. parsed JSON) into a `SearchRequest`; a ParseError names the bad field. */
export const decodeSearchRequest = Schema.decodeUnknown(SearchRequest)
