import { Effect } from "effect"
import { AutoEmbedConfig } from "../config/AutoEmbedConfig.js"
import { EmbeddingProvider, type EmbeddingProviderShape } from "../providers/EmbeddingProvider.js"
import { makeProviderFor } from "../providers/ProviderSpec.js"
import type { Source } from "../sources/SourceCatalog.js"

/**
 * The provider of each embedding set: the process's own for the configured sets, one client per
 * distinct spec for the others (made on first use and kept, so an Ollama set and an OpenAI set
 * run side by side in one process).
 */
export class SetProviders extends Effect.Service<SetProviders>()("@autoembed/core/SetProviders", {
  effect: Effect.gen(function*() {
    const config = yield* AutoEmbedConfig
    const own = yield* EmbeddingProvider
    const made = new Map<string, EmbeddingProviderShape>()
    const forSource = (s: Source) =>
      Effect.gen(function*() {
        if (s.set === undefined) return own
        const id = JSON.stringify(s.set.spec)
        const known = made.get(id)
        if (known) return known
        const provider = yield* makeProviderFor(s.set.spec, config)
        made.set(id, provider)
        return provider
      })
    return { forSource, own } as const
  })
}) {}
