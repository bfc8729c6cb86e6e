import * as SqlClient from "@effect/sql/SqlClient"
import { Duration, Effect, Layer } from "effect"
import type { AutoEmbedConfigShape } from "../../packages/core/src/AutoEmbedConfig.js"
import { EmbeddingProvider, type EmbeddingProviderShape } from "../../packages/core/src/EmbeddingProvider.js"
import { EmbeddingQueue } from "../../packages/core/src/EmbeddingQueue.js"
import { EmbeddingStore } from "../../packages/core/src/EmbeddingStore.js"
import { Extraction } from "../../packages/core/src/Extraction.js"
import { makeMigratedDatabaseLayer } from "../../packages/core/src/Migrations.js"
import { PendingSignal } from "../../packages/core/src/PendingSignal.js"
import { PipelineMetrics } from "../../packages/core/src/PipelineMetrics.js"
import { makeLocalProvider } from "../../packages/core/src/providers/LocalProvider.js"
import { type SourceDefinition, Sources } from "../../packages/core/src/Sources.js"
import { VectorIndex } from "../../packages/core/src/VectorIndex.js"
import { testConfig } from "./TestDatabase.js"

/** Database, migrations, sources, store and signal for the current test tier. */
export const storeLayer = (overrides: Partial<AutoEmbedConfigShape> = {}, custom: ReadonlyArray<SourceDefinition> = []) =>
  Layer.mergeAll(EmbeddingStore.Default, PipelineMetrics.Default, Extraction.Default, VectorIndex.Default).pipe(
    Layer.provideMerge(PendingSignal.Default),
    Layer.provideMerge(Sources.layer(custom)),
    Layer.provideMerge(makeMigratedDatabaseLayer()),
    Layer.provideMerge(testConfig({ sweepIntervalMs: 500, batchWindowMs: 5, ...overrides }))
  )

/** The whole pipeline with workers, on a given provider (Local by default). */
export const pipelineLayer = (
  options: { overrides?: Partial<AutoEmbedConfigShape>; provider?: EmbeddingProviderShape; custom?: ReadonlyArray<SourceDefinition> } = {}
) => {
  const dimensions = options.overrides?.dimensions ?? 256
  const provider = Layer.succeed(EmbeddingProvider, options.provider ?? makeLocalProvider(dimensions))
  return EmbeddingQueue.Default.pipe(
    Layer.provideMerge(provider),
    Layer.provideMerge(storeLayer({ dimensions, ...options.overrides }, options.custom))
  )
}

/** Waits until no row is pending (or the timeout passes) and returns the queue's remaining rows. */
export const waitUntilIdle = (timeout: Duration.DurationInput = Duration.seconds(60)) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const deadline = Date.now() + Duration.toMillis(Duration.decode(timeout))
    while (Date.now() < deadline) {
      const [r] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM embedding_queue WHERE failed_at IS NULL`
      if (r.n === 0) return 0
      yield* Effect.sleep(Duration.millis(50))
    }
    const [r] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM embedding_queue WHERE failed_at IS NULL`
    return r.n
  })
