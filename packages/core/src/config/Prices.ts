import { Schema } from "effect"

/**
 * What embedding costs: USD per 1M input tokens, by model. Keys are a model key (`openai/text-embedding-3-small`,
 * what rows and the ledger record) or a bare model name (`text-embedding-3-small`, any provider).
 */
export type PriceTable = Readonly<Record<string, number>>

/**
 * OpenAI's list prices for its embedding models (USD per 1M input tokens, standard tier, as published
 * on openai.com/api/pricing). Ollama and the local provider cost nothing; any other model has no
 * known price until the configuration file's `prices` gives one.
 */
export const DEFAULT_PRICES: PriceTable = {
  "openai/text-embedding-3-small": 0.02,
  "openai/text-embedding-3-large": 0.13,
  "openai/text-embedding-ada-002": 0.10
}

/** Providers that run on the operator's own hardware: no per-token price. */
const FREE_PROVIDERS = new Set(["ollama", "local"])

const PRICE_MESSAGE = "must be a price in USD per 1M input tokens: a number, 0 or more"

/** The configuration file's `prices`: `{ "openai/text-embedding-3-small": 0.02, "my-model": 0.05 }`. */
export const PricesConfig = Schema.Record({
  key: Schema.String.pipe(
    Schema.minLength(1, { message: () => "a price needs a model key such as openai/text-embedding-3-small" }),
    Schema.maxLength(300, { message: () => "a price's model key must be at most 300 characters" })
  ),
  value: Schema.Number.annotations({ message: () => PRICE_MESSAGE }).pipe(
    Schema.finite({ message: () => PRICE_MESSAGE }),
    Schema.nonNegative({ message: () => PRICE_MESSAGE })
  )
})

/**
 * The price of a model key (`provider/model`): the configuration's for the key, then for the bare
 * model name, then the default table; 0 for Ollama and local models; undefined when nobody knows.
 */
export const priceOf = (overrides: PriceTable, modelKey: string): number | undefined => {
  const slash = modelKey.indexOf("/")
  const provider = slash === -1 ? "" : modelKey.slice(0, slash)
  const model = slash === -1 ? modelKey : modelKey.slice(slash + 1)
  return overrides[modelKey] ?? overrides[model] ?? DEFAULT_PRICES[modelKey] ??
    (FREE_PROVIDERS.has(provider) ? 0 : undefined)
}

/** USD for `tokens` at `usdPerMillion` (an unknown price counts as 0). */
export const costOf = (tokens: number, usdPerMillion: number | undefined): number =>
  ((usdPerMillion ?? 0) * tokens) / 1_000_000
