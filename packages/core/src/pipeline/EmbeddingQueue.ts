import { Effect } from "effect"
import { EmbeddingPipeline } from "./EmbeddingPipeline.js"

/** The long-running embedding workers of this process (all sources, sweeper on). */
export class EmbeddingQueue extends Effect.Service<EmbeddingQueue>()("@autoembed/core/EmbeddingQueue", {
  dependencies: [EmbeddingPipeline.Default],
  scoped: Effect.flatMap(EmbeddingPipeline, (pipelines) => pipelines.start())
}) {}
