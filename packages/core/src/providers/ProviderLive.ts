import { Context, Effect, Either, Layer, Option } from "effect"
import { Ollama } from "ollama"
import { AutoEmbedConfig, type AutoEmbedConfigShape } from "../config/AutoEmbedConfig.js"
import { causeChain } from "../storage/SqlFailure.js"
import {
  DimensionMismatch,
  EmbeddingProvider,
  type EmbeddingProviderShape,
  ProviderStartupError
} from "./EmbeddingProvider.js"
import { LOCAL_MODEL, LocalProviderLive } from "./LocalProvider.js"
import type { ProviderName } from "./ModelProfiles.js"
import { OllamaProviderLive } from "./OllamaProvider.js"
import { OpenAIProviderLive } from "./OpenAIProvider.js"
import { failureDetail, oneLine } from "./ProviderSupport.js"

/** How long `auto` waits for Ollama before moving on: a local Ollama answers /api/version in milliseconds. */
export const AUTO_DETECT_TIMEOUT_MS = 800
/** How long the start-up probe waits for Ollama's /api/version before calling it unreachable. */
export const REACHABILITY_TIMEOUT_MS = 3_000

export interface ProviderSelection {
  readonly provider: ProviderName
  /** Why, for the start-up log. */
  readonly reason: string
}

/** Asks Ollama for its version; Right(version) or Left(error code / message). Never fails. */
export const ollamaReachable = (host: string, timeoutMs: number): Effect.Effect<Either.Either<string, string>> =>
  Effect.tryPromise({
    try: (signal) =>
      new Ollama({
        host,
        fetch: (input, init) =>
          fetch(input, { ...init, signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) })
      }).version(),
    catch: (error) => {
      const name = (error as { name?: unknown } | null)?.name
      if (name === "TimeoutError" || name === "AbortError") return `no answer within ${timeoutMs} ms`
      const status = (error as { status_code?: unknown } | null)?.status_code
      if (typeof status === "number") return `HTTP ${status}`
      return failureDetail(error)
    }
  }).pipe(
    Effect.map((v) => String((v as { version?: unknown } | null)?.version ?? "unknown")),
    Effect.either
  )

const trimHost = (host: string) => host.replace(/\/+$/, "")

/** `EMBEDDING_PROVIDER`, or for `auto`: Ollama if it answers, else OpenAI if configured, else Local. */
export const selectProvider = Effect.fn("EmbeddingProvider.select")(function*(config: AutoEmbedConfigShape) {
  if (config.provider !== "auto") {
    return { provider: config.provider, reason: `EMBEDDING_PROVIDER=${config.provider}` } satisfies ProviderSelection
  }
  const host = trimHost(config.ollamaHost)
  const ollama = yield* ollamaReachable(host, AUTO_DETECT_TIMEOUT_MS)
  if (Either.isRight(ollama)) {
    return {
      provider: "ollama",
      reason: `EMBEDDING_PROVIDER=auto and Ollama ${ollama.right} answered at ${host}`
    } satisfies ProviderSelection
  }
  const noOllama = `no Ollama answered at ${host} (${ollama.left})`
  if (Option.isSome(config.openaiApiKey) || Option.isSome(config.openaiBaseUrl)) {
    const what = Option.isSome(config.openaiApiKey) ? "OPENAI_API_KEY is set" : "OPENAI_BASE_URL is set"
    return { provider: "openai", reason: `EMBEDDING_PROVIDER=auto, ${noOllama}, ${what}` } satisfies ProviderSelection
  }
  // A model was asked for by name: quietly embedding with another one would surprise.
  if (Option.isSome(config.model) && config.model.value !== LOCAL_MODEL) {
    return yield* new ProviderStartupError({
      message: `EMBEDDING_MODEL=${config.model.value} is set but EMBEDDING_PROVIDER=auto found ${noOllama} ` +
        `and no OPENAI_API_KEY: set OLLAMA_HOST to a running Ollama, set OPENAI_API_KEY, ` +
        `or unset EMBEDDING_MODEL for the offline local provider`
    })
  }
  return {
    provider: "local",
    reason: `EMBEDDING_PROVIDER=auto, ${noOllama} and no OPENAI_API_KEY: using the offline lexical provider`
  } satisfies ProviderSelection
})

const unreachableOllama = (host: string, detail: string) =>
  new ProviderStartupError({
    message: `Ollama at ${host} is not reachable from this process (${detail}). ` +
      `Set OLLAMA_HOST to a running Ollama, or EMBEDDING_PROVIDER=local for the offline provider.`
  })

/**
 * One tiny embed call, no retries: an unreachable host, unknown model, bad key, or a dimension other
 * than EMBEDDING_DIMENSIONS stops start-up with one line that names the setting to change.
 * A 429 does not: the key and model are fine, the queue will wait.
 */
export const probeProvider = Effect.fn("EmbeddingProvider.probe")(function*(
  provider: EmbeddingProviderShape,
  config: AutoEmbedConfigShape
) {
  const host = trimHost(config.ollamaHost)
  if (provider.provider === "ollama") {
    // Fails in milliseconds (or a few seconds for a black-holed host), before the embed call's longer timeout.
    const reach = yield* ollamaReachable(host, Math.min(REACHABILITY_TIMEOUT_MS, config.providerTimeoutMs))
    if (Either.isLeft(reach)) return yield* unreachableOllama(host, reach.left)
  }
  const result = yield* Effect.either(provider.embed(["autoembed probe"], "document"))
  if (Either.isRight(result)) return
  const e = result.left
  const fail = (message: string) => Effect.fail(new ProviderStartupError({ message: oneLine(message), cause: e }))
  const mismatch = causeChain(e).find((c): c is DimensionMismatch => c instanceof DimensionMismatch)
  if (mismatch !== undefined) {
    return yield* fail(
      `model ${mismatch.model} returns ${mismatch.actual}-dimensional vectors ` +
        `but EMBEDDING_DIMENSIONS is ${mismatch.expected}: ` +
        `set EMBEDDING_DIMENSIONS=${mismatch.actual} (then \`pnpm cli migrate\`)`
    )
  }
  const where = provider.provider === "ollama" ? "OLLAMA_HOST" : "OPENAI_BASE_URL"
  switch (e.reason) {
    case "RateLimited":
      return yield* Effect.logWarning(`start-up probe was rate limited (${e.message}); continuing, the queue will wait`)
    case "ModelNotFound":
    case "Auth":
      return yield* fail(e.message)
    case "Transient": {
      if (e.status === undefined && e.message.includes("is not reachable from this process")) {
        return yield* fail(
          provider.provider === "ollama"
            ? `${e.message}. Set OLLAMA_HOST to a running Ollama, or EMBEDDING_PROVIDER=local for the offline provider.`
            : `${e.message}. Set OPENAI_BASE_URL to a running server (or unset it for api.openai.com), ` +
              `or EMBEDDING_PROVIDER=local for the offline provider.`
        )
      }
      return yield* fail(`start-up probe failed: ${e.message}; check ${where}, or set EMBEDDING_PROVIDER=local`)
    }
    default:
      return yield* fail(`start-up probe failed: ${e.message}; check ${where} and EMBEDDING_MODEL`)
  }
})

const layers: Record<ProviderName, Layer.Layer<EmbeddingProvider, ProviderStartupError, AutoEmbedConfig>> = {
  ollama: OllamaProviderLive,
  openai: OpenAIProviderLive,
  local: LocalProviderLive
}

/**
 * The provider chosen by EMBEDDING_PROVIDER (see `selectProvider`), probed once (see `probeProvider`).
 * Logs which provider and why.
 */
export const EmbeddingProviderLive: Layer.Layer<EmbeddingProvider, ProviderStartupError, AutoEmbedConfig> = Layer
  .unwrapEffect(
    Effect.gen(function*() {
      const config = yield* AutoEmbedConfig
      const selection = yield* selectProvider(config)
      return Layer.tap(layers[selection.provider], (context) => {
        const provider = Context.get(context, EmbeddingProvider)
        return probeProvider(provider, config).pipe(
          Effect.zipRight(
            Effect.logInfo(
              `embedding provider: ${provider.provider}, model ${provider.model}, ` +
                `${provider.dimensions} dimensions (${selection.reason})`
            )
          )
        )
      })
    })
  )
