import { Effect, Layer, Option } from "effect"
import { Ollama } from "ollama"
import { AutoEmbedConfig } from "../config/AutoEmbedConfig.js"
import {
  EmbeddingProvider,
  type EmbeddingProviderShape,
  type EmbedKind,
  ProviderError,
  type ProviderLimits
} from "./EmbeddingProvider.js"
import { DEFAULT_MODELS, type ModelProfile, profileFor } from "./ModelProfiles.js"
import {
  embedInGroups,
  errorMessage,
  failureDetail,
  oneLine,
  parseRetryAfter,
  validateVectors
} from "./ProviderSupport.js"

export interface OllamaProviderOptions {
  /** e.g. http://localhost:11434 */
  readonly host: string
  readonly model: string
  /** Expected vector length; any other length is a BadResponse. */
  readonly dimensions: number
  /** Timeout of one HTTP request. */
  readonly timeoutMs: number
  /** Replaces global fetch (tests). */
  readonly fetch?: typeof fetch
}

/**
 * Ollama has no documented cap on inputs per request, but it embeds them one after another, so a
 * bigger request saves no time, only round trips, while making each request longer (closer to the
 * timeout) and its JSON larger (512 × 1024 floats is ~10 MB). 512 keeps both bounded.
 */
export const OLLAMA_MAX_INPUTS = 512

export const ollamaLimits = (profile: ModelProfile): ProviderLimits => ({
  maxInputsPerRequest: OLLAMA_MAX_INPUTS,
  maxTokensPerInput: profile.contextTokens,
  // No server-side budget: every input is already capped at the context length.
  maxTokensPerRequest: OLLAMA_MAX_INPUTS * profile.contextTokens
})

const PROVIDER = "ollama"

/** Maps what the ollama client throws (ResponseError with status_code, fetch TypeError, JSON SyntaxError). */
export const mapOllamaError = (
  error: unknown,
  host: string,
  model: string,
  headers: Headers | undefined
): ProviderError => {
  const fail = (reason: ProviderError["reason"], message: string, status?: number, retryAfterMs?: number) =>
    new ProviderError({ reason, provider: PROVIDER, message: oneLine(message), status, retryAfterMs, cause: error })
  const status = (error as { status_code?: unknown } | null)?.status_code
  if (typeof status === "number") {
    const text = errorMessage(error)
    if (status === 404 || /model .* not found/i.test(text)) {
      return fail(
        "ModelNotFound",
        `Ollama at ${host} has no model "${model}" (${text}): run \`ollama pull ${model}\` there, ` +
          "or set EMBEDDING_MODEL to a model it has",
        status
      )
    }
    if (status === 429) {
      return fail("RateLimited", `Ollama at ${host} is rate limiting (429): ${text}`, status, parseRetryAfter(headers))
    }
    if (status === 401 || status === 403) {
      return fail("Auth", `Ollama at ${host} refused the request (${status}): ${text}`, status)
    }
    if (status === 408 || status >= 500) {
      return fail("Transient", `Ollama at ${host} answered ${status}: ${text}`, status)
    }
    return fail("InvalidInput", `Ollama at ${host} rejected the input (${status}): ${text}`, status)
  }
  if (error instanceof SyntaxError) {
    return fail("BadResponse", `Ollama at ${host} sent a body that is not valid JSON: ${error.message}`)
  }
  return fail("Transient", `Ollama at ${host} is not reachable from this process (${failureDetail(error)})`)
}

/** An EmbeddingProvider on the official `ollama` client (`POST /api/embed` with a batched `input`). */
export const makeOllamaProvider = (options: OllamaProviderOptions): EmbeddingProviderShape => {
  const profile = profileFor("ollama", options.model)
  const limits = ollamaLimits(profile)
  const baseFetch = options.fetch ?? fetch

  const request = (inputs: Array<string>) => {
    // The ollama client takes no AbortSignal, so each request gets a client whose fetch carries
    // Effect's interruption signal (and keeps the response headers for Retry-After).
    let headers: Headers | undefined
    return Effect.tryPromise({
      try: (signal) => {
        const client = new Ollama({
          host: options.host,
          fetch: async (input, init) => {
            const response = await baseFetch(input, { ...init, signal })
            headers = response.headers
            return response
          }
        })
        return client.embed({ model: options.model, input: inputs, truncate: true })
      },
      catch: (error) => mapOllamaError(error, options.host, options.model, headers)
    }).pipe(
      Effect.timeoutFail({
        duration: options.timeoutMs,
        onTimeout: () =>
          new ProviderError({
            reason: "Transient",
            provider: PROVIDER,
            message:
              `Ollama at ${options.host} did not answer within ${options.timeoutMs} ms (AUTOEMBED_PROVIDER_TIMEOUT_MS)`
          })
      }),
      Effect.flatMap((response) =>
        Effect.map(
          validateVectors(
            PROVIDER,
            options.model,
            inputs.length,
            options.dimensions,
            (response as { embeddings?: unknown } | null)?.embeddings
          ),
          // /api/embed reports the tokens it evaluated as `prompt_eval_count`.
          (vectors) => ({
            vectors,
            reportedTokens: (response as { prompt_eval_count?: unknown } | null)?.prompt_eval_count
          })
        )
      )
    )
  }

  const embed = Effect.fn("OllamaProvider.embed")(function*(texts: ReadonlyArray<string>, kind: EmbedKind) {
    yield* Effect.annotateCurrentSpan({ provider: PROVIDER, model: options.model, inputs: texts.length })
    return yield* embedInGroups(texts, kind, profile, limits, request)
  })

  return { provider: PROVIDER, model: options.model, dimensions: options.dimensions, limits, embed }
}

/**
 * Ollama at `OLLAMA_HOST`, model `EMBEDDING_MODEL` (default mxbai-embed-large). Does not probe; see
 * EmbeddingProviderLive.
 */
export const OllamaProviderLive: Layer.Layer<EmbeddingProvider, never, AutoEmbedConfig> = Layer.effect(
  EmbeddingProvider,
  Effect.map(AutoEmbedConfig, (config) =>
    makeOllamaProvider({
      host: config.ollamaHost.replace(/\/+$/, ""),
      model: Option.getOrElse(config.model, () => DEFAULT_MODELS.ollama),
      dimensions: config.dimensions,
      timeoutMs: config.providerTimeoutMs
    }))
)
