import type { EmbedKind } from "./EmbeddingProvider.js"

export type ProviderName = "ollama" | "openai" | "local"

/** What autoembed knows about an embedding model. */
export interface ModelProfile {
  /** The model name as configured (with any Ollama tag). */
  readonly model: string
  /** Whether the model is in the table below (else a safe default). */
  readonly known: boolean
  /** Length of the vectors the model returns when not asked for fewer; undefined when unknown. */
  readonly nativeDimensions: number | undefined
  /** Context length in tokens; inputs are truncated to it. */
  readonly contextTokens: number
  readonly documentPrefix: string
  readonly queryPrefix: string
  /** The OpenAI `dimensions` request parameter (Matryoshka shortening) is accepted. */
  readonly supportsDimensionsParam: boolean
}

type Entry = Omit<ModelProfile, "model" | "known">

const MXBAI_QUERY = "Represent this sentence for searching relevant passages: "

const entry = (e: Partial<Entry> & Pick<Entry, "contextTokens">): Entry => ({
  nativeDimensions: undefined,
  documentPrefix: "",
  queryPrefix: "",
  supportsDimensionsParam: false,
  ...e
})

/** Known models by base name (Ollama tag removed). Prefixes come from the model cards. */
const PROFILES: Record<string, Entry> = {
  // Ollama
  "mxbai-embed-large": entry({ nativeDimensions: 1024, contextTokens: 512, queryPrefix: MXBAI_QUERY }),
  "nomic-embed-text": entry({
    nativeDimensions: 768,
    contextTokens: 8192,
    documentPrefix: "search_document: ",
    queryPrefix: "search_query: "
  }),
  "all-minilm": entry({ nativeDimensions: 384, contextTokens: 512 }),
  // The untagged / :latest Ollama build is the 335m (large) model; smaller tags are below.
  "snowflake-arctic-embed": entry({ nativeDimensions: 1024, contextTokens: 512, queryPrefix: MXBAI_QUERY }),
  "snowflake-arctic-embed2": entry({ nativeDimensions: 1024, contextTokens: 8192, queryPrefix: "query: " }),
  "bge-m3": entry({ nativeDimensions: 1024, contextTokens: 8192 }),
  "bge-large": entry({ nativeDimensions: 1024, contextTokens: 512, queryPrefix: MXBAI_QUERY }),
  // OpenAI
  "text-embedding-3-small": entry({ nativeDimensions: 1536, contextTokens: 8191, supportsDimensionsParam: true }),
  "text-embedding-3-large": entry({ nativeDimensions: 3072, contextTokens: 8191, supportsDimensionsParam: true }),
  "text-embedding-ada-002": entry({ nativeDimensions: 1536, contextTokens: 8191 }),
  // Local
  "local-hash-v1": entry({ contextTokens: 8192 })
}

/** Ollama tags that change the model size (and so its dimensions). */
const TAGGED: Record<string, Partial<Entry>> = {
  "snowflake-arctic-embed:22m": { nativeDimensions: 384 },
  "snowflake-arctic-embed:33m": { nativeDimensions: 384 },
  "snowflake-arctic-embed:110m": { nativeDimensions: 768 },
  "snowflake-arctic-embed:137m": { nativeDimensions: 768, contextTokens: 2048 }
}

/** Model used when EMBEDDING_MODEL is not set. */
export const DEFAULT_MODELS: Record<ProviderName, string> = {
  ollama: "mxbai-embed-large",
  openai: "text-embedding-3-small",
  local: "local-hash-v1"
}

/** Context assumed for a model not in the table: the smallest common one for Ollama (BERT-size models). */
const DEFAULT_CONTEXT: Record<ProviderName, number> = { ollama: 512, openai: 8191, local: 8192 }

/** `mxbai-embed-large:latest` → `mxbai-embed-large`; Ollama names may carry a `:tag`. */
export const baseModelName = (model: string): string => {
  const trimmed = model.trim().toLowerCase()
  const colon = trimmed.indexOf(":")
  return colon === -1 ? trimmed : trimmed.slice(0, colon)
}

/** The profile of a model; unknown models get no prefix, the provider's default context and unknown dimensions. */
export const profileFor = (provider: ProviderName, model: string): ModelProfile => {
  // OpenAI model names never carry an Ollama tag (fine-tunes look like "ft:..."), so match them whole.
  const base = provider === "ollama" ? baseModelName(model) : model.trim().toLowerCase()
  const known = PROFILES[base]
  if (known === undefined) {
    return {
      model,
      known: false,
      nativeDimensions: undefined,
      contextTokens: DEFAULT_CONTEXT[provider],
      documentPrefix: "",
      queryPrefix: "",
      supportsDimensionsParam: false
    }
  }
  const tagged = provider === "ollama" ? TAGGED[model.trim().toLowerCase()] : undefined
  return { model, known: true, ...known, ...tagged }
}

export const prefixFor = (profile: ModelProfile, kind: EmbedKind): string =>
  kind === "query" ? profile.queryPrefix : profile.documentPrefix
