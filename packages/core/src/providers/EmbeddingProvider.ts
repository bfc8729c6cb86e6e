import { Context, Effect, Schema } from "effect"
import { EXIT_CODES, type Failure, FailureTypeId, type HttpAnswer } from "../Failure.js"

/** Whether a text is embedded as a stored document or as a search query (models may prefix them differently). */
export type EmbedKind = "document" | "query"

/** Why a provider call failed. Retry decisions elsewhere read only this. */
export const ProviderErrorReason = Schema.Literal(
  "Transient", // network, timeout, 5xx: retry with backoff
  "RateLimited", // 429: retry after `retryAfter`
  "InvalidInput", // 400, input too long: never retry, bisect the batch
  "Auth", // 401/403: configuration, affects everything
  "ModelNotFound", // unknown model: configuration, affects everything
  "BadResponse" // wrong count, wrong dimension, non-finite numbers, malformed body
)
export type ProviderErrorReason = typeof ProviderErrorReason.Type

export class ProviderError extends Schema.TaggedError<ProviderError>()("ProviderError", {
  reason: ProviderErrorReason,
  message: Schema.String,
  provider: Schema.String,
  /** Milliseconds to wait before retrying, from `Retry-After` / `x-ratelimit-reset-*`. */
  retryAfterMs: Schema.optional(Schema.Number),
  /** The provider's HTTP status, when it answered. */
  status: Schema.optional(Schema.Number),
  cause: Schema.optional(Schema.Unknown)
}) implements Failure {
  get [FailureTypeId](): FailureTypeId {
    return FailureTypeId
  }
  get exitCode() {
    return EXIT_CODES.failed
  }
  /** A query the provider cannot embed now: 429 (with Retry-After) when rate limited, else 503; details are logged. */
  get http(): HttpAnswer {
    if (this.reason === "RateLimited") {
      const seconds = Math.max(1, Math.ceil((this.retryAfterMs ?? 1000) / 1000))
      return {
        status: 429,
        code: "provider_rate_limited",
        message: "The embedding provider is rate limiting; retry later",
        details: { retry_after_seconds: seconds },
        headers: { "retry-after": String(seconds) },
        log: "warning"
      }
    }
    return {
      status: 503,
      code: "provider_unavailable",
      message: `The embedding provider (${this.provider}) cannot embed the query right now`,
      details: { reason: this.reason },
      headers: { "retry-after": "5" },
      log: "warning"
    }
  }
}

export const isRetryable = (e: ProviderError): boolean => e.reason === "Transient" || e.reason === "RateLimited"

/** Errors that affect every request (configuration), so the queue pauses instead of failing rows. */
export const isSystemic = (e: ProviderError): boolean => e.reason === "Auth" || e.reason === "ModelNotFound"

export interface ProviderLimits {
  /** Most inputs in one request. */
  readonly maxInputsPerRequest: number
  /** Context length of the model; longer inputs are truncated (see `truncateToTokens`). */
  readonly maxTokensPerInput: number
  /** Most (estimated) tokens in one request. */
  readonly maxTokensPerRequest: number
}

/**
 * The input tokens of one `embed` call, for the token and cost ledger. Providers that answer with
 * usage (OpenAI's `usage.prompt_tokens`, Ollama's `prompt_eval_count`) report it; where a provider
 * reports none, autoembed counts the inputs as sent with `estimateTokens`.
 */
export interface EmbedUsage {
  /** Billable input tokens: the provider's figure where it reported one, autoembed's count otherwise. */
  readonly tokens: number
  /** True when every request of the call reported its usage (so `tokens` holds no estimate). */
  readonly reported: boolean
  /** The part of `tokens` autoembed counted because the provider reported nothing. */
  readonly estimatedTokens: number
  /** autoembed's own count of the same inputs, whatever was reported: calibrates dry-run estimates. */
  readonly countedTokens: number
  /** Requests sent to the provider (one per group within its limits). */
  readonly requests: number
}

/**
 * What `embed` returns: one vector per text, plus the call's usage when the provider knows it.
 * `usage` is optional so that a provider written before the ledger (or a test double returning a
 * plain array) still fits; `usageOf` counts what such a provider leaves out.
 */
export type Embeddings = ReadonlyArray<ReadonlyArray<number>> & { readonly usage?: EmbedUsage | undefined }

/**
 * Vectors with their usage attached to the array itself, not enumerable: callers that index,
 * compare or serialise the vectors see exactly what they saw before the ledger.
 */
export const withUsage = <A extends ReadonlyArray<ReadonlyArray<number>>>(vectors: A, usage: EmbedUsage): A & {
  readonly usage: EmbedUsage
} => Object.defineProperty(vectors, "usage", { value: usage, enumerable: false }) as A & { readonly usage: EmbedUsage }

/** A counted usage of `texts` (one request): for providers that report nothing. */
export const countedUsage = (texts: ReadonlyArray<string>, requests = 1): EmbedUsage => {
  const counted = texts.reduce((n, t) => n + estimateTokens(t), 0)
  return { tokens: counted, reported: false, estimatedTokens: counted, countedTokens: counted, requests }
}

/** The usage an `embed` call returned, or the inputs counted when the provider attached none. */
export const usageOf = (texts: ReadonlyArray<string>, embeddings: Embeddings): EmbedUsage =>
  embeddings.usage ?? countedUsage(texts)

export interface EmbeddingProviderShape {
  /** "ollama" | "openai" | "local" */
  readonly provider: string
  readonly model: string
  readonly dimensions: number
  readonly limits: ProviderLimits
  /**
   * One vector per text, in order, each of length `dimensions`, with the call's `usage` where the
   * provider knows it (see `Embeddings`). Over-long texts are truncated, never sent to fail.
   */
  readonly embed: (
    texts: ReadonlyArray<string>,
    kind: EmbedKind
  ) => Effect.Effect<Embeddings, ProviderError>
}

export class EmbeddingProvider extends Context.Tag("@autoembed/core/EmbeddingProvider")<
  EmbeddingProvider,
  EmbeddingProviderShape
>() {}

/**
 * The provider could not be started: unreachable host, unknown model, bad key, or a dimension that
 * does not match the vector columns. `message` is one line that names the setting to change.
 */
export class ProviderStartupError extends Schema.TaggedError<ProviderStartupError>()("ProviderStartupError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Unknown)
}) implements Failure {
  get [FailureTypeId](): FailureTypeId {
    return FailureTypeId
  }
  get exitCode() {
    return EXIT_CODES.configuration
  }
}

/**
 * Vectors of another length than EMBEDDING_DIMENSIONS: a model that returns them (`model`), or a
 * source's vector column that holds them (`source`). The message names the setting to change.
 */
export class DimensionMismatch extends Schema.TaggedError<DimensionMismatch>()("DimensionMismatch", {
  message: Schema.String,
  /** EMBEDDING_DIMENSIONS. */
  expected: Schema.Number,
  /** What the model returns or the column holds. */
  actual: Schema.Number,
  model: Schema.optional(Schema.String),
  source: Schema.optional(Schema.String)
}) implements Failure {
  get [FailureTypeId](): FailureTypeId {
    return FailureTypeId
  }
  get exitCode() {
    return EXIT_CODES.configuration
  }
}

/** UTF-8 length of a string without allocating (surrogate pairs count 4 bytes). */
export const utf8Bytes = (text: string): number => {
  let bytes = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 0x80) bytes += 1
    else if (c < 0x800) bytes += 2
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1)
      if (d >= 0xdc00 && d <= 0xdfff) {
        bytes += 4
        i++
      } else bytes += 3
    } else bytes += 3
  }
  return bytes
}

/**
 * Estimated tokens of a text: `ceil(UTF-8 bytes / 3)`.
 *
 * No tokenizer ships with autoembed, so this is a deliberate over-estimate: English runs about
 * 4 characters per token in BPE and WordPiece vocabularies, so 3 bytes a token leaves ~25% headroom;
 * a CJK character is 3 UTF-8 bytes and about one token, so it counts as one. The batcher sums it
 * for its per-request token budget; `truncateToTokens` cuts over-long inputs by it.
 */
export const estimateTokens = (text: string): number => Math.ceil(utf8Bytes(text) / 3)

/** How far back (in characters) from the cut `truncateToTokens` looks for whitespace. */
const WHITESPACE_WINDOW = 64

/**
 * Cuts `text` so that `estimateTokens(result) <= maxTokens`, never sending an input that fails.
 *
 * Rule: a text whose estimate fits is returned unchanged. Otherwise keep the longest prefix of at
 * most `3 * maxTokens` UTF-8 bytes (never splitting a character or a surrogate pair); if that
 * prefix has whitespace within its last 64 characters, cut at the last such whitespace so no word
 * is split; drop trailing whitespace. The start of a text is kept because titles and first
 * sentences carry the most meaning. Providers apply the model's prefix first and truncate the
 * prefixed text to the model's context, so the prefix always survives.
 */
export const truncateToTokens = (text: string, maxTokens: number): string => {
  const budget = Math.max(0, Math.floor(maxTokens)) * 3
  if (utf8Bytes(text) <= budget) return text
  let bytes = 0
  let end = 0
  while (end < text.length) {
    const c = text.charCodeAt(end)
    let size = c < 0x80 ? 1 : c < 0x800 ? 2 : 3
    let units = 1
    if (c >= 0xd800 && c <= 0xdbff && end + 1 < text.length) {
      const d = text.charCodeAt(end + 1)
      if (d >= 0xdc00 && d <= 0xdfff) {
        size = 4
        units = 2
      }
    }
    if (bytes + size > budget) break
    bytes += size
    end += units
  }
  // Only look for a word boundary if the next character does not already start one.
  if (end < text.length && !/\s/.test(text[end])) {
    for (let i = end - 1; i >= Math.max(1, end - WHITESPACE_WINDOW); i--) {
      if (/\s/.test(text[i])) {
        end = i
        break
      }
    }
  }
  return text.slice(0, end).trimEnd()
}

/**
 * Splits texts into consecutive groups that respect `maxInputsPerRequest` and
 * `maxTokensPerRequest` (by `estimateTokens`, each input capped at `maxTokensPerInput` since it will
 * be truncated to that). Order is preserved; a group always holds at least one text.
 */
export const splitByLimits: {
  <A extends string>(texts: ReadonlyArray<A>, limits: ProviderLimits): Array<Array<A>>
  <A>(items: ReadonlyArray<A>, limits: ProviderLimits, textOf: (item: A) => string): Array<Array<A>>
} = <A>(
  items: ReadonlyArray<A>,
  limits: ProviderLimits,
  textOf: (item: A) => string = (item) => item as unknown as string
) => {
  const groups: Array<Array<A>> = []
  let current: Array<A> = []
  let tokens = 0
  for (const item of items) {
    const t = Math.min(estimateTokens(textOf(item)), limits.maxTokensPerInput)
    if (
      current.length > 0 && (current.length >= limits.maxInputsPerRequest || tokens + t > limits.maxTokensPerRequest)
    ) {
      groups.push(current)
      current = []
      tokens = 0
    }
    current.push(item)
    tokens += t
  }
  if (current.length > 0) groups.push(current)
  return groups
}
