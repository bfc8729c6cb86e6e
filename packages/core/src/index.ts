/** @autoembed/core: keeps pgvector embeddings of PostgreSQL rows correct and searchable. */
export * as AutoEmbed from "./AutoEmbed.js"
export type { AutoEmbedOptions, AutoEmbedServices, AutoEmbedStartupError } from "./AutoEmbed.js"
export { startupErrorMessage } from "./AutoEmbed.js"
export * from "./config/AutoEmbedConfig.js"
export * from "./config/Prices.js"
export * from "./config/SourceConfig.js"
export * from "./Facade.js"
export * from "./Failure.js"
export { builtinSources } from "./knowledge/Builtin.js"
export * from "./knowledge/Extraction.js"
export * from "./knowledge/SampleData.js"
export * from "./operations/Readiness.js"
export * from "./pipeline/Backfill.js"
export { assembleJob, BackfillJobs, type JobRecord } from "./pipeline/BackfillJobs.js"
export * from "./pipeline/EmbeddingPipeline.js"
export * from "./pipeline/EmbeddingQueue.js"
export * from "./pipeline/Fleet.js"
export * from "./pipeline/PendingSignal.js"
export * from "./pipeline/PipelineMetrics.js"
export * from "./pipeline/ProviderCircuit.js"
export * from "./pipeline/RetryPolicy.js"
export * from "./pipeline/Status.js"
export * from "./pipeline/WorkerStatus.js"
export * from "./providers/EmbeddingProvider.js"
export {
  AUTO_DETECT_TIMEOUT_MS,
  baseModelName,
  DEFAULT_MODELS,
  EmbeddingProviderLive,
  embedLocal,
  LOCAL_MODEL,
  LocalProviderLive,
  makeLocalProvider,
  makeOllamaProvider,
  makeOpenAIProvider,
  OllamaProviderLive,
  OpenAIProviderLive,
  prefixFor,
  profileFor
} from "./providers/index.js"
export type { ModelProfile, ProviderName } from "./providers/index.js"
export * from "./providers/ProviderSpec.js"
export * from "./search/QueryCache.js"
export * from "./search/Search.js"
export * from "./sets/DeclaredSets.js"
export * from "./sets/EmbeddingSets.js"
export * from "./sets/SetProviders.js"
export * from "./sets/SetRegistry.js"
export { defaultSetName, setSource } from "./sets/SetRows.js"
export * from "./sets/SetSchemas.js"
export * from "./sources/Installer.js"
export * from "./sources/SourceCatalog.js"
export * from "./sources/SourceReport.js"
export * from "./sources/Sources.js"
export * from "./storage/ActiveModel.js"
export * from "./storage/Database.js"
export * from "./storage/EmbeddingStore.js"
export * from "./storage/Migrations.js"
export * from "./storage/SqlFailure.js"
export * from "./storage/VectorEncoding.js"
export * from "./storage/VectorIndex.js"
