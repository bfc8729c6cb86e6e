/** @autoembed/core: keeps pgvector embeddings of PostgreSQL rows correct and searchable. */
export * as AutoEmbed from "./AutoEmbed.js"
export type { AutoEmbedOptions, AutoEmbedServices, AutoEmbedStartupError } from "./AutoEmbed.js"
export { EXIT_CODES, exitCodeOf, startupErrorMessage } from "./AutoEmbed.js"
export * from "./AutoEmbedConfig.js"
export * from "./Backfill.js"
export { builtinSources } from "./Builtin.js"
export * from "./Database.js"
export * from "./EmbeddingProvider.js"
export * from "./EmbeddingQueue.js"
export * from "./EmbeddingStore.js"
export * from "./Extraction.js"
export * from "./Facade.js"
export * from "./Installer.js"
export * from "./Migrations.js"
export * from "./PendingSignal.js"
export * from "./PipelineMetrics.js"
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
export * from "./QueryCache.js"
export * from "./RetryPolicy.js"
export * from "./SampleData.js"
export * from "./Search.js"
export * from "./SourceCatalog.js"
export * from "./SourceConfig.js"
export * from "./SourceReport.js"
export * from "./Sources.js"
export * from "./SqlFailure.js"
export * from "./Status.js"
export * from "./VectorEncoding.js"
export * from "./VectorIndex.js"
