import { Schema } from "effect"
import { ProviderKind } from "../providers/ProviderKind.js"

/**
 * The shapes of the embedding-set lifecycle, defined once: the CLI, the HTTP contract (snake_case
 * on the wire) and library callers all decode and print these.
 */

const Text = (what: string, max: number) =>
  Schema.String.pipe(
    Schema.minLength(1, { message: () => `${what} must not be empty` }),
    Schema.maxLength(max, { message: () => `${what} must be at most ${max} characters` }),
    Schema.filter((s) => !/[\u0000-\u001f]/.test(s) || `${what} must not contain control characters`)
  )

export const SetSourceName = Text("source", 63)
export const SetName = Text("set", 200)

export const AddSetRequest = Schema.Struct({
  source: SetSourceName,
  provider: ProviderKind,
  model: Text("model", 200),
  /** Default: the model's native size where autoembed knows it. */
  dimensions: Schema.optional(
    Schema.Int.pipe(Schema.between(1, 16000, { message: () => "dimensions must be a whole number from 1 to 16000" }))
  ),
  /** Default `<source>@<model>` (with the dimensions appended when that name is taken). */
  name: Schema.optional(SetName),
  /** Where the provider answers: an Ollama host or an OpenAI-compatible base URL. */
  baseUrl: Schema.optional(
    Text("base_url", 2000).pipe(
      Schema.filter((s) => /^https?:\/\/[^\s]+$/.test(s) || "base_url must be an http(s) URL")
    )
  ),
  /** A vector(n) column of the source's table to hold the set's vectors (default: autoembed's own table). */
  vector: Schema.optional(Text("vector", 63))
})
export type AddSetRequest = typeof AddSetRequest.Type
export type AddSetInput = typeof AddSetRequest.Encoded

/** Where a set stands: serving search, being filled, complete but not serving. */
export const SetPhase = Schema.Literal("active", "building", "ready")

export const SetReport = Schema.Struct({
  source: Schema.String,
  name: Schema.String,
  /** What autoembed's queue and bookkeeping know the set by. */
  key: Schema.String,
  provider: Schema.String,
  model: Schema.String,
  dimensions: Schema.Number,
  baseUrl: Schema.NullOr(Schema.String),
  storage: Schema.Literal("internal", "column"),
  vectorColumn: Schema.NullOr(Schema.String),
  /** The set the configuration declares (embedded by the process's own provider). */
  configured: Schema.Boolean,
  active: Schema.Boolean,
  /** The set `sets rollback` re-activates. */
  previous: Schema.Boolean,
  phase: SetPhase,
  total: Schema.Number,
  embedded: Schema.Number,
  missing: Schema.Number,
  stale: Schema.Number,
  failed: Schema.Number,
  pending: Schema.Number,
  /** embedded / total, 0..1. */
  progress: Schema.Number,
  index: Schema.Struct({
    name: Schema.String,
    exists: Schema.Boolean,
    valid: Schema.Boolean,
    bulkMark: Schema.NullOr(Schema.String),
    sizeBytes: Schema.Number
  }),
  storageBytes: Schema.Number.annotations({
    description: "The set's vector payload: embedded rows × (4 × dimensions + 8) bytes, pgvector's size of one " +
      "vector. The same measure for a set in autoembed's table and one in a column of your table, so sets " +
      "compare; row headers, TOAST, free space and the index (index.size_bytes) are not in it"
  }),
  tableBytes: Schema.NullOr(Schema.Number).annotations({
    description: "On-disk size of autoembed's vector table of the set (heap, TOAST and free space, without the " +
      "HNSW index): what dropping it frees. Null for a set in a column of your table, which shares its table"
  }),
  createdAt: Schema.String,
  activatedAt: Schema.NullOr(Schema.String)
})
export type SetReport = typeof SetReport.Type

export const SetsReport = Schema.Struct({ sets: Schema.Array(SetReport) })
export type SetsReport = typeof SetsReport.Type

/** One query of a comparison, and the rows judged relevant to it (for nDCG@10 and recall@10). */
export const CompareQuery = Schema.Struct({
  text: Text("query", 1000),
  relevant: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Number }))
})

export const CompareRequest = Schema.Struct({
  source: SetSourceName,
  a: SetName,
  b: SetName,
  /** How many rows' texts to sample as queries when no queries are given. */
  sample: Schema.optionalWith(
    Schema.Int.pipe(Schema.between(1, 1000, { message: () => "sample must be from 1 to 1000" })),
    { default: () => 50 }
  ),
  queries: Schema.optional(Schema.Array(CompareQuery).pipe(Schema.maxItems(10_000)))
})
export type CompareRequest = typeof CompareRequest.Type
export type CompareInput = typeof CompareRequest.Encoded

/** One set's side of a comparison; `provider` and bare `model` as in its SetReport. */
export const CompareSide = Schema.Struct({
  name: Schema.String,
  provider: Schema.String,
  model: Schema.String,
  dimensions: Schema.Number,
  embedded: Schema.Number,
  total: Schema.Number,
  latencyP50Ms: Schema.Number,
  latencyP95Ms: Schema.Number,
  /** As SetReport's: the vector payload, comparable between the two sets whatever their storage. */
  storageBytes: Schema.Number,
  indexBytes: Schema.Number,
  /** Present when the queries came with relevance judgements. */
  ndcgAt10: Schema.optional(Schema.Number),
  recallAt10: Schema.optional(Schema.Number)
})

export const CompareReport = Schema.Struct({
  source: Schema.String,
  queries: Schema.Number,
  /** Where the queries came from: sampled row texts, or the caller's. */
  querySource: Schema.Literal("sampled", "given"),
  /** Mean share of the top 10 both sets return. */
  overlapAt10: Schema.Number,
  a: CompareSide,
  b: CompareSide
})
export type CompareReport = typeof CompareReport.Type
