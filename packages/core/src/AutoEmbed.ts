import type * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect, Layer } from "effect"
import { AutoEmbedConfig, type AutoEmbedConfigShape, autoEmbedConfig, ConfigurationError, formatConfigError } from "./AutoEmbedConfig.js"
import { Backfill } from "./Backfill.js"
import type { Database, DatabaseError } from "./Database.js"
import type { EmbeddingProvider, ProviderStartupError } from "./EmbeddingProvider.js"
import { EmbeddingQueue } from "./EmbeddingQueue.js"
import { EmbeddingStore } from "./EmbeddingStore.js"
import { Extraction } from "./Extraction.js"
import { makeMigratedDatabaseLayer } from "./Migrations.js"
import { PendingSignal } from "./PendingSignal.js"
import { PipelineMetrics } from "./PipelineMetrics.js"
import { EmbeddingProviderLive } from "./providers/ProviderLive.js"
import { QueryCache } from "./QueryCache.js"
import { Search } from "./Search.js"
import { type DimensionMismatch, type SourceDefinition, type SourceError, Sources } from "./Sources.js"
import { Status } from "./Status.js"
import { VectorIndex } from "./VectorIndex.js"

export interface AutoEmbedOptions {
  /** Settings on top of the environment (or on top of the defaults when `env` is false). */
  readonly config?: Partial<AutoEmbedConfigShape>
  /** Read settings from the environment (default true). */
  readonly env?: boolean
  /** Your own tables to embed, besides (or instead of) the built-in atoms and messages. */
  readonly sources?: ReadonlyArray<SourceDefinition>
  /** Keep the built-in atoms/messages sources (default true). */
  readonly builtinSources?: boolean
  /** Run embedding workers in this process (default true; an API-only process sets false). */
  readonly workers?: boolean
  /** Replace provider selection (tests, custom providers). */
  readonly provider?: Layer.Layer<EmbeddingProvider, ProviderStartupError, AutoEmbedConfig>
}

/** Everything autoembed provides once its layer is built. */
export type AutoEmbedServices =
  | AutoEmbedConfig
  | SqlClient.SqlClient
  | Database
  | Sources
  | EmbeddingProvider
  | EmbeddingStore
  | PendingSignal
  | PipelineMetrics
  | Extraction
  | Backfill
  | Status
  | Search
  | QueryCache
  | VectorIndex

export type AutoEmbedStartupError =
  | ConfigurationError
  | DatabaseError
  | SourceError
  | DimensionMismatch
  | SqlError
  | ProviderStartupError

const configLayer = (options: AutoEmbedOptions): Layer.Layer<AutoEmbedConfig, ConfigurationError> => {
  if (options.env === false) return AutoEmbedConfig.make(options.config)
  if (!options.config) return AutoEmbedConfig.layer
  const overrides = options.config
  return Layer.effect(
    AutoEmbedConfig,
    Effect.map(
      Effect.mapError(autoEmbedConfig, (e) => new ConfigurationError(formatConfigError(e))),
      (fromEnv) => ({ ...fromEnv, ...overrides })
    )
  )
}

/**
 * The whole of autoembed as one layer: configuration, database (migrated), sources, provider
 * (probed once), the pending state, extraction hook, backfill, search, status, and — unless
 * `workers: false` — the embedding workers. Its scope closing drains the workers gracefully.
 */
export const layer = (options: AutoEmbedOptions = {}): Layer.Layer<AutoEmbedServices | EmbeddingQueue, AutoEmbedStartupError> => {
  const config = configLayer(options)
  const database = makeMigratedDatabaseLayer()
  const sources = Sources.layer(options.sources ?? [], { builtins: options.builtinSources })
  const provider = options.provider ?? EmbeddingProviderLive
  const base = Layer.mergeAll(sources, provider).pipe(Layer.provideMerge(database))
  const core = Layer.mergeAll(EmbeddingStore.Default, PipelineMetrics.Default, QueryCache.Default, VectorIndex.Default).pipe(
    Layer.provideMerge(PendingSignal.Default),
    Layer.provideMerge(base)
  )
  const services = Layer.mergeAll(Extraction.Default, Search.DefaultWithoutDependencies, Backfill.Default).pipe(Layer.provideMerge(core))
  const withWorkers = options.workers === false
    ? services
    : Layer.provideMerge(EmbeddingQueue.Default, services)
  // Status reads the queue when this process runs one.
  return Layer.provideMerge(Status.Default, withWorkers).pipe(Layer.provideMerge(config)) as Layer.Layer<
    AutoEmbedServices | EmbeddingQueue,
    AutoEmbedStartupError
  >
}

/** One line for a start-up failure: every startup error's message already names the setting to change. */
export const startupErrorMessage = (error: unknown): string => {
  const e = error as { _tag?: string; message?: string }
  if (e && typeof e.message === "string" && e.message.length > 0) return e.message.split("\n")[0]
  return String(error)
}
