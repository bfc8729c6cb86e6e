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
 * Why a spec cannot work, before any client is made (an OpenAI set with no key, a local set with
 * another model, more dimensions than the model returns), or undefined. The dimensions may be
 * unknown yet: what depends on them is checked only when they are given, so a wrong model is named
 * before a question about its size.
 */
export const specProblem = (
  spec: Omit<ProviderSpec, "dimensions"> & { readonly dimensions?: number | undefined },
  config: AutoEmbedConfigShape
): string | undefined => {
  switch (spec.provider) {
    case "local":
      return spec.model === LOCAL_MODEL
        ? undefined
        : `the local provider has one model, ${LOCAL_MODEL}, not ${spec.model}`
    case "ollama":
      return undefined
    case "openai": {
      const profile = profileFor("openai", spec.model)
      if (
        profile.supportsDimensionsParam && profile.nativeDimensions !== undefined &&
        spec.dimensions !== undefined && spec.dimensions > profile.nativeDimensions
      ) {
        return `model ${spec.model} returns at most ${profile.nativeDimensions}-dimensional vectors, ` +
          `not ${spec.dimensions}`
      }
      return openaiApiKey(spec, config) === undefined
        ? "an OpenAI set needs OPENAI_API_KEY (or a base URL of a compatible server)"
        : undefined
    }
  }
}

/** The process's OpenAI key; a placeholder for a compatible server at a base URL that needs none. */
const openaiApiKey = (spec: { readonly baseUrl?: string | undefined }, config: AutoEmbedConfigShape) =>
  Option.match(config.openaiApiKey, {
    onSome: (key) => Redacted.value(key),
    onNone: () =>
      (spec.baseUrl ?? Option.getOrUndefined(config.openaiBaseUrl)) === undefined
        ? undefined
        : PLACEHOLDER_API_KEY
  })

/**
 * A provider for a set's spec, with the process's timeouts and secrets. Fails with one line naming
 * what to set when the spec cannot work (see `specProblem`).
 */
export const makeProviderFor = (spec: ProviderSpec, config: AutoEmbedConfigShape) =>
  Effect.gen(function*() {
    const problem = specProblem(spec, config)
    if (problem !== undefined) return yield* new ProviderStartupError({ message: problem })
    switch (spec.provider) {
      case "local":
        return makeLocalProvider(spec.dimensions)
      case "ollama":
        return makeOllamaProvider({
          host: (spec.baseUrl ?? config.ollamaHost).replace(/\/+$/, ""),
          model: spec.model,
          dimensions: spec.dimensions,
          timeoutMs: config.providerTimeoutMs
        })
      case "openai":
        return makeOpenAIProvider({
          apiKey: openaiApiKey(spec, config)!,
          baseURL: spec.baseUrl ?? Option.getOrUndefined(config.openaiBaseUrl),
          model: spec.model,
          dimensions: spec.dimensions,
          timeoutMs: config.providerTimeoutMs
        }) satisfies EmbeddingProviderShape
    }
  })
