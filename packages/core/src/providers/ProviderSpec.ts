import { Effect, Option, Redacted } from "effect"
import type { AutoEmbedConfigShape } from "../config/AutoEmbedConfig.js"
import { type EmbeddingProviderShape, ProviderStartupError } from "./EmbeddingProvider.js"
import { makeLocalProvider } from "./LocalProvider.js"
import { LOCAL_MODEL } from "./LocalProvider.js"
import { profileFor } from "./ModelProfiles.js"
import { makeOllamaProvider } from "./OllamaProvider.js"
import { makeOpenAIProvider, PLACEHOLDER_API_KEY } from "./OpenAIProvider.js"
import type { ProviderKind } from "./ProviderKind.js"

export { ProviderKind } from "./ProviderKind.js"

/**
 * Which model embeds a set: provider, model, dimensions and, optionally, where the provider
 * answers (an Ollama host or an OpenAI-compatible base URL; default: OLLAMA_HOST / OPENAI_BASE_URL).
 * Secrets are never part of it: the API key comes from the process's OPENAI_API_KEY.
 */
export interface ProviderSpec {
  readonly provider: ProviderKind
  readonly model: string
  readonly dimensions: number
  readonly baseUrl?: string | undefined
}

/** What rows record as their embedding's origin; search only compares vectors with the same key. */
export const modelKeyOf = (provider: { readonly provider: string; readonly model: string }): string =>
  `${provider.provider}/${provider.model}`

/**
 * A provider for a set's spec, with the process's timeouts and secrets. Fails with one line naming
 * what to set when the spec cannot work (an OpenAI set with no key, a local set with another model).
 */
export const makeProviderFor = (spec: ProviderSpec, config: AutoEmbedConfigShape) =>
  Effect.gen(function*() {
    const fail = (message: string) => new ProviderStartupError({ message })
    switch (spec.provider) {
      case "local":
        if (spec.model !== LOCAL_MODEL) {
          return yield* fail(`the local provider has one model, ${LOCAL_MODEL}, not ${spec.model}`)
        }
        return makeLocalProvider(spec.dimensions)
      case "ollama":
        return makeOllamaProvider({
          host: (spec.baseUrl ?? config.ollamaHost).replace(/\/+$/, ""),
          model: spec.model,
          dimensions: spec.dimensions,
          timeoutMs: config.providerTimeoutMs
        })
      case "openai": {
        const profile = profileFor("openai", spec.model)
        if (
          profile.supportsDimensionsParam && profile.nativeDimensions !== undefined &&
          spec.dimensions > profile.nativeDimensions
        ) {
          return yield* fail(
            `model ${spec.model} returns at most ${profile.nativeDimensions}-dimensional vectors, ` +
              `not ${spec.dimensions}`
          )
        }
        const baseURL = spec.baseUrl ?? Option.getOrUndefined(config.openaiBaseUrl)
        const apiKey = Option.match(config.openaiApiKey, {
          onSome: (key) => Redacted.value(key),
          onNone: () => baseURL === undefined ? undefined : PLACEHOLDER_API_KEY
        })
        if (apiKey === undefined) {
          return yield* fail("an OpenAI set needs OPENAI_API_KEY (or a base URL of a compatible server)")
        }
        return makeOpenAIProvider({
          apiKey,
          baseURL,
          model: spec.model,
          dimensions: spec.dimensions,
          timeoutMs: config.providerTimeoutMs
        }) satisfies EmbeddingProviderShape
      }
    }
  })
