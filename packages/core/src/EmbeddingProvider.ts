import { Context, Data, Effect } from "effect"

/** Whether a text is embedded as a stored document or as a search query (models may prefix them differently). */
export type EmbedKind = "document" | "query"

/** Why a provider call failed. Retry decisions elsewhere read only this. */
export type ProviderErrorReason =
  | "Transient" // network, timeout, 5xx: retry with backoff
  | "RateLimited" // 429: retry after `retryAfter`
  | "InvalidInput" // 400, input too long: never retry, bisect the batch
  | "Auth" // 401/403: configuration, affects everything
  | "ModelNotFound" // unknown model: configuration, affects everything
  | "BadResponse" // wrong count, wrong dimension, non-finite numbers, malformed body

export class ProviderError extends Data.TaggedError("ProviderError")<{
  readonly reason: ProviderErrorReason
  readonly message: string
  readonly provider: string
  /** Milliseconds to wait before retrying, from `Retry-After` / `x-ratelimit-reset-*`. */
  readonly retryAfterMs?: number | undefined
  readonly status?: number | undefined
  readonly cause?: unknown
}> {}

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

export interface EmbeddingProviderShape {
  /** "ollama" | "openai" | "local" */
  readonly provider: string
  readonly model: string
  readonly dimensions: number
  readonly limits: ProviderLimits
  /** One vector per text, in order, each of length `dimensions`. Over-long texts are truncated, never sent to fail. */
  readonly embed: (
    texts: ReadonlyArray<string>,
    kind: EmbedKind
  ) => Effect.Effect<ReadonlyArray<ReadonlyArray<number>>, ProviderError>
}

export class EmbeddingProvider extends Context.Tag("@autoembed/core/EmbeddingProvider")<
  EmbeddingProvider,
  EmbeddingProviderShape
>() {}
