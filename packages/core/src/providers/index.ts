export * from "./LocalProvider.js"
export * from "./ModelProfiles.js"
export * from "./OllamaProvider.js"
export * from "./OpenAIProvider.js"
export * from "./ProviderLive.js"
export {
  DimensionMismatch,
  parseDuration,
  parseRetryAfter,
  prepareInputs,
  validateVectors
} from "./ProviderSupport.js"
