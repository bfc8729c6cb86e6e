import * as SqlClient from "@effect/sql/SqlClient"
import { Duration, Effect, Layer } from "effect"
import type { AutoEmbedConfigShape } from "../../packages/core/src/config/AutoEmbedConfig.js"
import type { SourceConfigInput } from "../../packages/core/src/config/SourceConfig.js"
import { Extraction } from "../../packages/core/src/knowledge/Extraction.js"
import { EmbeddingQueue } from "../../packages/core/src/pipeline/EmbeddingQueue.js"
import { Fleet } from "../../packages/core/src/pipeline/Fleet.js"
import { PendingSignal } from "../../packages/core/src/pipeline/PendingSignal.js"
import { PipelineMetrics } from "../../packages/core/src/pipeline/PipelineMetrics.js"
import { ProviderCircuit } from "../../packages/core/src/pipeline/ProviderCircuit.js"
import { EmbeddingProvider, type EmbeddingProviderShape } from "../../packages/core/src/providers/EmbeddingProvider.js"
import { makeLocalProvider } from "../../packages/core/src/providers/LocalProvider.js"
import { SetProviders } from "../../packages/core/src/sets/SetProviders.js"
import { SetRegistry } from "../../packages/core/src/sets/SetRegistry.js"
import { Sources } from "../../packages/core/src/sources/Sources.js"
import { ActiveModel } from "../../packages/core/src/storage/ActiveModel.js"
import { makeDatabaseLayer } from "../../packages/core/src/storage/Database.js"
import { EmbeddingStore } from "../../packages/core/src/storage/EmbeddingStore.js"
import { stateTables } from "../../packages/core/src/storage/State.js"
import { VectorIndex } from "../../packages/core/src/storage/VectorIndex.js"
import { testConfig } from "./TestDatabase.js"

export type CustomSources = Readonly<Record<string, SourceConfigInput>>

/**
 * Database, installed sources, provider (Local by default), store and signal for the current test
 * tier. The built-in model is on unless `overrides.builtin` says otherwise; `custom` sources are
 * declared beside it.
 */
export const storeLayer = (
  overrides: Partial<AutoEmbedConfigShape> = {},
  custom: CustomSources = {},
  provider: EmbeddingProviderShape = makeLocalProvider(overrides.dimensions ?? 256)
) =>
  Layer.mergeAll(
    EmbeddingStore.Default,
    PipelineMetrics.Default,
    Extraction.Default,
    VectorIndex.Default,
    Fleet.Default,
    ProviderCircuit.Default
  ).pipe(
    Layer.provideMerge(Layer.mergeAll(SetRegistry.Default, SetProviders.Default)),
    Layer.provideMerge(Layer.merge(PendingSignal.Default, ActiveModel.Default)),
    Layer.provideMerge(Layer.succeed(EmbeddingProvider, provider)),
    Layer.provideMerge(Sources.layer),
    Layer.provideMerge(makeDatabaseLayer()),
    Layer.provideMerge(
      testConfig({
        sweepIntervalMs: 500,
        batchWindowMs: 5,
        sources: custom as AutoEmbedConfigShape["sources"],
        ...overrides
      })
    )
  )

/** The whole pipeline with workers, on a given provider (Local by default). */
export const pipelineLayer = (
  options: { overrides?: Partial<AutoEmbedConfigShape>; provider?: EmbeddingProviderShape; custom?: CustomSources } = {}
) => {
  const dimensions = options.overrides?.dimensions ?? 256
  const provider = options.provider ?? makeLocalProvider(dimensions)
  return EmbeddingQueue.Default.pipe(
    Layer.provideMerge(storeLayer({ dimensions, ...options.overrides }, options.custom, provider))
  )
}

/** Waits until no row is pending (or the timeout passes) and returns the queue's remaining rows. */
export const waitUntilIdle = (timeout: Duration.DurationInput = Duration.seconds(60)) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const queue = stateTables(sql, "autoembed").queue
    const deadline = Date.now() + Duration.toMillis(Duration.decode(timeout))
    while (Date.now() < deadline) {
      const [r] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM ${queue} WHERE failed_at IS NULL`
      if (r.n === 0) return 0
      yield* Effect.sleep(Duration.millis(50))
    }
    const [r] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM ${queue} WHERE failed_at IS NULL`
    return r.n
  })

/** Re-runs `check` every 100 ms until it yields a value; dies naming `what` after `timeoutMs`. */
export const pollUntil = <A, E, R>(what: string, check: Effect.Effect<A | undefined, E, R>, timeoutMs = 90_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      const found = yield* check
      if (found !== undefined) return found
      yield* Effect.sleep(Duration.millis(100))
    }
    return yield* Effect.dieMessage(`timed out waiting for ${what}`)
  })
