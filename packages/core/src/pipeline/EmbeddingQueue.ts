import { Duration, Effect, Schedule } from "effect"
import { SetRegistry } from "../sets/SetRegistry.js"
import { EmbeddingPipeline, type Pipeline } from "./EmbeddingPipeline.js"
import { Fleet, HEARTBEAT_MS } from "./Fleet.js"
import { PipelineMetrics } from "./PipelineMetrics.js"

/**
 * The heartbeat of this process's workers, every HEARTBEAT_MS from the start, so every process
 * (an API without workers too) lists them; a failed write is logged and the next one tries again.
 * The row goes when the workers stop.
 */
const heartbeat = (pipeline: Pipeline) =>
  Effect.gen(function*() {
    const fleet = yield* Fleet
    const registry = yield* SetRegistry
    const metrics = yield* PipelineMetrics
    let embedded = -1
    let lastBatchAt: Date | null = null
    const beat = Effect.gen(function*() {
      const stats = yield* pipeline.stats
      const now = (yield* metrics.snapshot).embedded
      if (embedded >= 0 && now > embedded) lastBatchAt = new Date()
      embedded = now
      yield* fleet.beat({
        workerId: pipeline.workerId,
        sets: (yield* registry.targets).map((s) => s.name),
        inFlight: stats.inFlight,
        queueDepth: stats.depth,
        embedded: now,
        lastBatchAt,
        pausedForMs: stats.pausedForMs,
        lastError: stats.lastError
      })
    }).pipe(Effect.catchAll((e) => Effect.logWarning("autoembed: writing the worker heartbeat failed", e)))
    yield* Effect.addFinalizer(() =>
      fleet.leave(pipeline.workerId).pipe(Effect.timeoutOption(Duration.seconds(2)), Effect.ignore)
    )
    yield* Effect.forkScoped(Effect.repeat(beat, Schedule.spaced(Duration.millis(HEARTBEAT_MS))))
  })

/** The long-running embedding workers of this process (all sources, sweeper on), with their heartbeat. */
export class EmbeddingQueue extends Effect.Service<EmbeddingQueue>()("@autoembed/core/EmbeddingQueue", {
  dependencies: [EmbeddingPipeline.Default],
  scoped: Effect.gen(function*() {
    const pipeline = yield* (yield* EmbeddingPipeline).start()
    yield* heartbeat(pipeline)
    return pipeline
  })
}) {}
