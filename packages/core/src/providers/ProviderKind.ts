import { Schema } from "effect"

/**
 * The providers an embedding set may name. Its own module (no imports but effect) because the
 * configuration file's schema needs it, and the providers themselves read the configuration.
 */
export const ProviderKind = Schema.Literal("ollama", "openai", "local")
export type ProviderKind = typeof ProviderKind.Type
