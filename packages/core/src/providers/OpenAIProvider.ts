import { Effect, Layer, Option, Redacted } from "effect"
import OpenAI from "openai"
import { AutoEmbedConfig } from "../config/AutoEmbedConfig.js"
import {
  EmbeddingProvider,
  type EmbeddingProviderShape,
  type EmbedKind,
  ProviderError,
  type ProviderLimits,
  ProviderStartupError
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

export const OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"

/**
 * Sent when no key is configured but a custom base URL is: local compatible servers need none, the client
 * insists on one.
 */
export const PLACEHOLDER_API_KEY = "sk-no-key-required"

export interface OpenAIProviderOptions {
  readonly apiKey: string
  /** Any OpenAI-compatible server (vLLM, LiteLLM, TEI, gateways); default https://api.openai.com/v1. */
  readonly baseURL?: string | undefined
  readonly model: string
  /** Expected vector length; sent as `dimensions` when the model can shorten its vectors. */
  readonly dimensions: number
  readonly timeoutMs: number
  /** Replaces global fetch (tests). */
  readonly fetch?: typeof fetch
}

/** OpenAI's documented limits: 2,048 inputs and 300,000 tokens per request, 8,191 tokens per input. */
export const openaiLimits = (profile: ModelProfile): ProviderLimits => ({
  maxInputsPerRequest: 2048,
  maxTokensPerInput: Math.min(profile.contextTokens, 8191),
  maxTokensPerRequest: 300_000
})

const PROVIDER = "openai"

/** Float32 little-endian, as OpenAI's `encoding_format: "base64"` sends them. */
export const decodeBase64Floats = (data: string): Array<number> => {
  const bytes = Buffer.from(data, "base64")
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const out = new Array<number>(Math.floor(bytes.byteLength / 4))
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true)
  return out
}

const modelMissing = (text: string): boolean => /model[^.]*(does not exist|not found|not exist)/i.test(text)

/** Maps what the openai client throws; the client's own retries are off, retrying is the queue's job. */
export const mapOpenAIError = (error: unknown, baseURL: string, model: string): ProviderError => {
  const fail = (reason: ProviderError["reason"], message: string, status?: number, retryAfterMs?: number) =>
    new ProviderError({ reason, provider: PROVIDER, message: oneLine(message), status, retryAfterMs, cause: error })
  if (error instanceof OpenAI.APIConnectionTimeoutError) {
    return fail("Transient", `${baseURL} did not answer in time (AUTOEMBED_PROVIDER_TIMEOUT_MS)`)
  }
  if (error instanceof OpenAI.APIUserAbortError) return fail("Transient", `request to ${baseURL} was aborted`)
  if (error instanceof OpenAI.APIConnectionError) {
    return fail(
      "Transient",
      `${baseURL} is not reachable from this process (${failureDetail(error)})`
    )
  }
  if (error instanceof OpenAI.APIError && typeof error.status === "number") {
    const status = error.status
    const text = error.message
    if (error.code === "model_not_found" || ((status === 400 || status === 404) && modelMissing(text))) {
      return fail(
        "ModelNotFound",
        `${baseURL} has no embedding model "${model}" (${text}): set EMBEDDING_MODEL`,
        status
      )
    }
    if (status === 429) {
      // No quota left is a billing problem, not a pace problem: waiting will not fix it.
      if (error.code === "insufficient_quota") {
        return fail("Auth", `${baseURL}: the account has no quota left (${text})`, status)
      }
      return fail("RateLimited", `${baseURL} is rate limiting (429): ${text}`, status, parseRetryAfter(error.headers))
    }
    if (status === 401 || status === 403) {
      return fail("Auth", `${baseURL} rejected the API key (${status}): ${text}; set OPENAI_API_KEY`, status)
    }
    if (status === 404) {
      return fail(
        "ModelNotFound",
        `${baseURL} answered 404 for model "${model}" (${text}): ` +
          "set EMBEDDING_MODEL, and check that OPENAI_BASE_URL ends in /v1",
        status
      )
    }
    if (status === 408 || status === 409 || status >= 500) {
      return fail("Transient", `${baseURL} answered ${status}: ${text}`, status)
    }
    return fail("InvalidInput", `${baseURL} rejected the input (${status}): ${text}`, status)
  }
  if (error instanceof SyntaxError) {
    return fail("BadResponse", `${baseURL} sent a body that is not valid JSON: ${error.message}`)
  }
  return fail("Transient", `request to ${baseURL} failed: ${errorMessage(error)}`)
}

/** Vectors in input order (sorted by `index`), base64 strings decoded whatever encoding was asked for. */
const vectorsOf = (response: unknown): unknown => {
  const data = (response as { data?: unknown } | null)?.data
  if (!Array.isArray(data)) return undefined
  const items = data as Array<{ index?: unknown; embedding?: unknown }>
  const sorted = items.every((d) => typeof d?.index === "number")
    ? [...items].sort((a, b) => (a.index as number) - (b.index as number))
    : items
  return sorted.map((d) => (typeof d?.embedding === "string" ? decodeBase64Floats(d.embedding) : d?.embedding))
}

/** `usage.prompt_tokens` of an answer (compatible servers may leave `usage` out). */
const promptTokensOf = (response: unknown): unknown =>
  (response as { usage?: { prompt_tokens?: unknown } | null } | null)?.usage?.prompt_tokens

/** An EmbeddingProvider on the official `openai` client (`POST /v1/embeddings`, any compatible `baseURL`). */
export const makeOpenAIProvider = (options: OpenAIProviderOptions): EmbeddingProviderShape => {
  const baseURL = (options.baseURL ?? OPENAI_DEFAULT_BASE_URL).replace(/\/+$/, "")
  const profile = profileFor("openai", options.model)
  const limits = openaiLimits(profile)
  // Explicit organization/project/baseURL so the client reads nothing from the environment.
  const client = new OpenAI({
    apiKey: options.apiKey,
    baseURL,
    organization: null,
    project: null,
    maxRetries: 0,
    timeout: options.timeoutMs,
    ...(options.fetch ? { fetch: options.fetch } : {})
  })
  const sendDimensions = profile.supportsDimensionsParam && options.dimensions !== profile.nativeDimensions

  const request = (inputs: Array<string>) =>
    Effect.tryPromise({
      try: (signal) =>
        client.embeddings.create(
          {
            model: options.model,
            input: inputs,
            // Always float: with the client's default (base64) a server that answers floats yields garbage.
            encoding_format: "float",
            ...(sendDimensions ? { dimensions: options.dimensions } : {})
          },
          { signal }
        ),
      catch: (error) => mapOpenAIError(error, baseURL, options.model)
    }).pipe(
      Effect.flatMap((response) =>
        Effect.map(
          validateVectors(PROVIDER, options.model, inputs.length, options.dimensions, vectorsOf(response)),
          (vectors) => ({ vectors, reportedTokens: promptTokensOf(response) })
        )
      )
    )

  const embed = Effect.fn("OpenAIProvider.embed")(function*(texts: ReadonlyArray<string>, kind: EmbedKind) {
    yield* Effect.annotateCurrentSpan({ provider: PROVIDER, model: options.model, inputs: texts.length })
    return yield* embedInGroups(texts, kind, profile, limits, request)
  })

  return { provider: PROVIDER, model: options.model, dimensions: options.dimensions, limits, embed }
}

/**
 * OpenAI (or a compatible server at `OPENAI_BASE_URL`), model `EMBEDDING_MODEL` (default
 * text-embedding-3-small). Needs OPENAI_API_KEY unless a base URL is set. Does not probe; see EmbeddingProviderLive.
 */
export const OpenAIProviderLive: Layer.Layer<EmbeddingProvider, ProviderStartupError, AutoEmbedConfig> = Layer.effect(
  EmbeddingProvider,
  Effect.gen(function*() {
    const config = yield* AutoEmbedConfig
    const model = Option.getOrElse(config.model, () => DEFAULT_MODELS.openai)
    const profile = profileFor("openai", model)
    if (
      profile.supportsDimensionsParam && profile.nativeDimensions !== undefined &&
      config.dimensions > profile.nativeDimensions
    ) {
      return yield* new ProviderStartupError({
        message: `model ${model} returns at most ${profile.nativeDimensions}-dimensional vectors ` +
          `but EMBEDDING_DIMENSIONS is ${config.dimensions}: ` +
          `set EMBEDDING_DIMENSIONS=${profile.nativeDimensions} or less (then \`pnpm cli migrate\`)`
      })
    }
    const apiKey = Option.match(config.openaiApiKey, {
      onSome: (key) => Option.some(Redacted.value(key)),
      onNone: () => Option.map(config.openaiBaseUrl, () => PLACEHOLDER_API_KEY)
    })
    if (Option.isNone(apiKey)) {
      return yield* new ProviderStartupError({
        message: "EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY " +
          "(or OPENAI_BASE_URL for a compatible server that needs no key); or use EMBEDDING_PROVIDER=ollama or local"
      })
    }
    return makeOpenAIProvider({
      apiKey: apiKey.value,
      baseURL: Option.getOrUndefined(config.openaiBaseUrl),
      model,
      dimensions: config.dimensions,
      timeoutMs: config.providerTimeoutMs
    })
  })
)
