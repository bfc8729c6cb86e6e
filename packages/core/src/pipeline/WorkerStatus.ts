import { Context, Effect, Layer, Option } from "effect"
import type { QueueStats } from "./EmbeddingPipeline.js"
import { EmbeddingQueue } from "./EmbeddingQueue.js"

export interface WorkerStatusShape {
  /** The embedding workers' figures when this process runs them, else none. */
  readonly stats: Effect.Effect<Option.Option<QueueStats>>
}

/**
 * What status and metrics report about this process's embedding workers. A port with two layers,
 * so that whether a process runs workers is decided where its layers are composed, in its type.
 */
export class WorkerStatus extends Context.Tag("@autoembed/core/WorkerStatus")<WorkerStatus, WorkerStatusShape>() {
  /** The workers of this process. */
  static readonly fromQueue: Layer.Layer<WorkerStatus, never, EmbeddingQueue> = Layer.effect(
    WorkerStatus,
    Effect.map(EmbeddingQueue, (queue) => ({ stats: Effect.map(queue.stats, Option.some) }))
  )
  /** No workers run in this process (an API-only server, a CLI command). */
  static readonly none: Layer.Layer<WorkerStatus> = Layer.succeed(WorkerStatus, { stats: Effect.succeedNone })
}
