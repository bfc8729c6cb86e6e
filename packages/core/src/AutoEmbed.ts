import type * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { Context, Effect, Layer, Option, Predicate } from "effect"
import { AutoEmbedConfig, type AutoEmbedConfigShape, ConfigurationError, readConfig } from "./config/AutoEmbedConfig.js"
import type { ConfigFileError, SourceConfigInput } from "./config/SourceConfig.js"
import { Extraction } from "./knowledge/Extraction.js"
import { Readiness } from "./operations/Readiness.js"
import { Backfill } from "./pipeline/Backfill.js"
import { EmbeddingQueue } from "./pipeline/EmbeddingQueue.js"
import { Fleet } from "./pipeline/Fleet.js"
import { PendingSignal } from "./pipeline/PendingSignal.js"
import { PipelineMetrics } from "./pipeline/PipelineMetrics.js"
import { ProviderCircuit } from "./pipeline/ProviderCircuit.js"
import { Status } from "./pipeline/Status.js"
import { WorkerStatus } from "./pipeline/WorkerStatus.js"
import type { DimensionMismatch, EmbeddingProvider, ProviderStartupError } from "./providers/EmbeddingProvider.js"
import { EmbeddingProviderLive } from "./providers/ProviderLive.js"
import { QueryCache } from "./search/QueryCache.js"
import { Search } from "./search/Search.js"
import { DeclaredSets } from "./sets/DeclaredSets.js"
import { EmbeddingSets } from "./sets/EmbeddingSets.js"
import { SetProviders } from "./sets/SetProviders.js"
import { SetRegistry } from "./sets/SetRegistry.js"
import { SourceError, Sources } from "./sources/Sources.js"
import { ActiveModel } from "./storage/ActiveModel.js"
import type { Database, DatabaseError } from "./storage/Database.js"
import { makeDatabaseLayer } from "./storage/Database.js"
import { EmbeddingStore } from "./storage/EmbeddingStore.js"
import { sqlReason } from "./storage/SqlFailure.js"
import { VectorIndex } from "./storage/VectorIndex.js"

export interface AutoEmbedOptions {
  /** Settings on top of the environment (or on top of the defaults when `env` is false). */
  readonly config?: Partial<AutoEmbedConfigShape>
  /** Read settings from the environment (default true). */
  readonly env?: boolean
  /**
   * Your own tables to embed, by source name, in the configuration file's shape; added to the
   * file's sources (a name may appear once).
   */
  readonly sources?: Readonly<Record<string, SourceConfigInput>>
  /** Keep the built-in knowledge model (default: on unless sources are declared, in code or in the file). */
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
  | ActiveModel
  | SetRegistry
  | SetProviders
  | EmbeddingSets
  | DeclaredSets
  | EmbeddingStore
  | PendingSignal
  | PipelineMetrics
  | Fleet
  | ProviderCircuit
  | Extraction
  | Backfill
  | Status
  | WorkerStatus
  | Readiness
  | Search
  | QueryCache
  | VectorIndex

export type AutoEmbedStartupError =
  | ConfigurationError
  | ConfigFileError
  | DatabaseError
  | SourceError
  | DimensionMismatch
  | SqlError
  | ProviderStartupError

/** Declared sources from code join the file's; declaring any turns the built-in model off unless asked. */
const withSources = (
  base: AutoEmbedConfigShape,
  options: AutoEmbedOptions
): Effect.Effect<AutoEmbedConfigShape, ConfigurationError> => {
  const code = options.sources ?? {}
  const clash = Object.keys(code).find((name) => name in base.sources)
  if (clash) {
    return Effect.fail(
      new ConfigurationError({
        message: `Source "${clash}" is declared both in code and in ${
          Option.getOrElse(base.configFile, () => "the configuration file")
        }`
      })
    )
  }
  const sources = { ...base.sources, ...code } as AutoEmbedConfigShape["sources"]
  const declaredInCode = Object.keys(code).length > 0
  const builtin = options.builtinSources ?? (declaredInCode ? false : base.builtin)
  return Effect.succeed({ ...base, sources, builtin })
}

const configLayer = (options: AutoEmbedOptions): Layer.Layer<AutoEmbedConfig, ConfigurationError> => {
  const base = options.env === false
    ? Layer.build(AutoEmbedConfig.make(options.config)).pipe(
      Effect.map((ctx) => Context.get(ctx, AutoEmbedConfig)),
      Effect.scoped
    )
    : Effect.map(readConfig, (fromEnv) => ({ ...fromEnv, ...options.config }))
  return Layer.effect(AutoEmbedConfig, Effect.flatMap(base, (config) => withSources(config, options)))
}

/**
 * The whole of autoembed as one layer: configuration, database (migrated), sources, provider
 * (probed once), the pending state, extraction hook, backfill, search, status, and — unless
 * `workers: false` — the embedding workers. Its scope closing drains the workers gracefully.
 */
export const layer = (
  options: AutoEmbedOptions = {}
): Layer.Layer<AutoEmbedServices | EmbeddingQueue, AutoEmbedStartupError> => {
  const config = configLayer(options)
  const database = makeDatabaseLayer()
  const provider = options.provider ?? EmbeddingProviderLive
  // The provider is probed before anything is installed: a model of the wrong size changes nothing.
  const base = Sources.layer.pipe(Layer.provideMerge(provider), Layer.provideMerge(database))
  const core = Layer.mergeAll(
    EmbeddingStore.Default,
    PipelineMetrics.Default,
    QueryCache.Default,
    VectorIndex.Default,
    Fleet.Default,
    ProviderCircuit.Default
  )
    .pipe(
      Layer.provideMerge(Layer.merge(SetRegistry.Default, SetProviders.Default)),
      Layer.provideMerge(Layer.merge(PendingSignal.Default, ActiveModel.Default)),
      Layer.provideMerge(base)
    )
  const searchAndJobs = Layer.mergeAll(
    Extraction.Default,
    Search.DefaultWithoutDependencies,
    Backfill.Default,
    Readiness.Default
  ).pipe(
    Layer.provideMerge(core)
  )
  // Status (and the API's metrics) read the workers' figures through WorkerStatus: from the queue
  // when this process runs one, none otherwise.
  // The file's declared sets are added (or checked) once the lifecycle exists, before any worker starts.
  const services = Layer.provideMerge(DeclaredSets.Default, Layer.provideMerge(EmbeddingSets.Default, searchAndJobs))
  const withWorkers = options.workers === false
    ? Layer.provideMerge(WorkerStatus.none, services)
    : Layer.provideMerge(WorkerStatus.fromQueue, Layer.provideMerge(EmbeddingQueue.Default, services))
  return Layer.provideMerge(Status.Default, withWorkers).pipe(Layer.provideMerge(config)) as Layer.Layer<
    AutoEmbedServices | EmbeddingQueue,
    AutoEmbedStartupError
  >
}

/** One line for a start-up failure: every startup error's message already names the setting to change. */
export const startupErrorMessage = (error: unknown): string => {
  // SqlError's own message is generic ("Failed to execute statement"); the database's words are in its cause.
  if (error instanceof SqlError) return `The database refused a statement at start-up: ${sqlReason(error)}`
  // A source's problems are one line each: all of them are worth reading.
  if (error instanceof SourceError) return error.message
  if (Predicate.hasProperty(error, "message") && typeof error.message === "string" && error.message.length > 0) {
    return error.message.split("\n")[0]
  }
  return String(error)
}

/** The exit codes moved to Failure.ts (one table for every process); still here for `AutoEmbed.exitCodeOf`. */
export { EXIT_CODES, exitCodeOf } from "./Failure.js"
