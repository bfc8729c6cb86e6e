import { Effect, Layer } from "effect"
import { EmbeddingProvider } from "../providers/EmbeddingProvider.js"
import { modelKeyOf } from "../providers/ProviderSpec.js"

/**
 * The model key this process embeds and searches with (`provider/model`), resolved once from the
 * provider. The store records it with every vector and compares it in every count and search, so
 * callers never pass it around.
 */
export class ActiveModel extends Effect.Service<ActiveModel>()("@autoembed/core/ActiveModel", {
  effect: Effect.map(EmbeddingProvider, (provider) => ({ key: modelKeyOf(provider) }) as const)
}) {
  /** A fixed key, for programs that write vectors without a provider (benchmarks, tests). */
  static readonly fixed = (key: string): Layer.Layer<ActiveModel> =>
    Layer.succeed(ActiveModel, ActiveModel.make({ key }))
}
