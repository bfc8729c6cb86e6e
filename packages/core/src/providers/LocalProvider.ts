/**
 * The offline provider: a lexical embedding by signed feature hashing. It needs no download, no
 * network and no dependency, and the same text gives a bit-identical vector in every process.
 *
 * What it is: a bag of normalised words (light English stemming, stop words removed), word bigrams
 * and character 3/4-grams, with sublinear term frequency, hashed into `dimensions` buckets with a
 * random sign (so collisions cancel on average instead of adding up) and L2-normalised. Cosine
 * similarity then ranks texts that share (rare and frequent alike) words with the query first.
 *
 * What it is not: a semantic model. It knows no synonyms ("car" and "automobile" share nothing but
 * a character n-gram or two), no word order beyond bigrams and no other language's morphology, and it has no IDF,
 * so frequent words weigh as much as rare ones. Use it for zero-setup runs, demos and tests; use
 * Ollama or OpenAI for real semantic search.
 */
import { Effect, Layer, Option } from "effect"
import { AutoEmbedConfig } from "../config/AutoEmbedConfig.js"
import {
  countedUsage,
  EmbeddingProvider,
  type EmbeddingProviderShape,
  type EmbedKind,
  type ProviderLimits,
  ProviderStartupError,
  withUsage
} from "./EmbeddingProvider.js"
import { DEFAULT_MODELS } from "./ModelProfiles.js"

/** The only model; change the name if the algorithm below changes, so stored vectors are never mixed. */
export const LOCAL_MODEL = DEFAULT_MODELS.local

// Tuned on SciFact (top-10 hit rate 0.63 with unigrams and bigrams at 0.5, 0.71 with these).
const WEIGHT_UNIGRAM = 1
const WEIGHT_BIGRAM = 0.25
const WEIGHT_CHARGRAM = 0.35

const SEED_UNIGRAM = 0x811c9dc5
const SEED_BIGRAM = 0x1b873593
const SEED_CHARGRAM = 0x5bd1e995

// Small English stop-word list: function words that would otherwise dominate every vector (no IDF).
const STOP_WORDS = new Set(
  (
    "a an and are as at be been being but by can could did do does doing for from had has have having he her " +
    "here hers him his how i if in into is it its itself me more most my no nor not of on once only or other " +
    "our ours out over own same she should so some such than that the their theirs them then there these they " +
    "this those through to too under until up very was we were what when where which while who whom why will " +
    "with would you your yours also may might must shall about above after again against all any because " +
    "before below between both during each few further just now off s t"
  ).split(" ")
)

/** 32-bit FNV-1a over UTF-16 code units `[start, end)` of `s`, from `seed`. */
const fnv1a = (s: string, start: number, end: number, seed: number): number => {
  let h = seed
  for (let i = start; i < end; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

/** murmur3's finaliser: spreads FNV's weak low bits before they pick a bucket and a sign. */
const fmix32 = (h: number): number => {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

const isVowel = (c: string) => c === "a" || c === "e" || c === "i" || c === "o" || c === "u" || c === "y"
const hasVowel = (s: string) => {
  for (let i = 0; i < s.length; i++) if (isVowel(s[i])) return true
  return false
}

/**
 * Light English stemming: plural, -ed/-ing, -ly, -ation, a final -e; enough to match "increases",
 * "increased", "increasing" and "increase". Words of 3 letters or fewer and non-Latin words are kept.
 */
export const stem = (word: string): string => {
  if (word.length <= 3 || !/^[a-z]+$/.test(word)) return word
  let w = word
  if (w.endsWith("sses")) w = w.slice(0, -2)
  else if (w.endsWith("ies") && w.length > 4) w = w.slice(0, -3) + "y"
  else if (/(?:x|z|ch|sh)es$/.test(w)) w = w.slice(0, -2)
  else if (w.endsWith("s") && !/(?:ss|us|is)$/.test(w)) w = w.slice(0, -1)

  let cut = false
  if (w.endsWith("ied") && w.length > 4) w = w.slice(0, -3) + "y"
  else if (w.endsWith("ingly") && hasVowel(w.slice(0, -5)) && w.length > 7) {
    w = w.slice(0, -5)
    cut = true
  } else if (w.endsWith("edly") && hasVowel(w.slice(0, -4)) && w.length > 6) {
    w = w.slice(0, -4)
    cut = true
  } else if (w.endsWith("ly") && w.length > 5) w = w.slice(0, -2)
  else if (w.endsWith("ing") && w.length > 5 && hasVowel(w.slice(0, -3))) {
    w = w.slice(0, -3)
    cut = true
  } else if (w.endsWith("ed") && w.length > 4 && hasVowel(w.slice(0, -2))) {
    w = w.slice(0, -2)
    cut = true
  }

  if (w.endsWith("ation") && w.length > 7) w = w.slice(0, -5) + "at"
  else if (w.endsWith("ational") && w.length > 9) w = w.slice(0, -7) + "at"
  // "stopped" → "stopp" → "stop"; but keep "fall", "kiss", "buzz".
  if (
    cut && w.length > 3 && w[w.length - 1] === w[w.length - 2] && !/[lsz]/.test(w[w.length - 1]) &&
    !isVowel(w[w.length - 1])
  ) {
    w = w.slice(0, -1)
  }
  if (w.endsWith("e") && w.length > 4) w = w.slice(0, -1)
  return w
}

const TOKEN = /[\p{L}\p{N}]+/gu

/** Lowercased NFKC words of letters and digits; single ASCII letters dropped ("don't" → "don"). */
export const tokenize = (text: string): Array<string> => {
  const words: Array<string> = []
  for (const m of text.normalize("NFKC").toLowerCase().matchAll(TOKEN)) {
    const w = m[0]
    if (w.length === 1 && w >= "a" && w <= "z") continue
    words.push(w)
  }
  return words
}

const add = (counts: Map<number, number>, h: number) => counts.set(h, (counts.get(h) ?? 0) + 1)

/**
 * The embedding of one text, `dimensions` long, unit L2 norm, deterministic.
 *
 * A text with no letters or digits gets a fixed unit vector (every component 1/√dimensions):
 * a zero vector has no cosine (pgvector returns NaN, which breaks ordering and HNSW), and a fixed
 * one keeps all empty texts equal to each other and unremarkable to everything else.
 */
export const embedLocal = (text: string, dimensions: number): Array<number> => {
  const words = tokenize(text)
  let content = words.filter((w) => !STOP_WORDS.has(w))
  // A text of stop words only ("to be or not to be") still deserves its words.
  if (content.length === 0) content = words
  if (content.length === 0) return new Array<number>(dimensions).fill(1 / Math.sqrt(dimensions))
  const out = new Float64Array(dimensions)

  const unigrams = new Map<number, number>()
  const bigrams = new Map<number, number>()
  const chargrams = new Map<number, number>()
  let previous: string | undefined
  for (const word of content) {
    const s = stem(word)
    add(unigrams, fnv1a(s, 0, s.length, SEED_UNIGRAM))
    if (previous !== undefined) {
      const pair = previous + " " + s
      add(bigrams, fnv1a(pair, 0, pair.length, SEED_BIGRAM))
    }
    previous = s
    if (word.length >= 3) {
      const bounded = "<" + word + ">"
      for (let n = 3; n <= 4; n++) {
        for (let i = 0; i + n <= bounded.length; i++) add(chargrams, fnv1a(bounded, i, i + n, SEED_CHARGRAM))
      }
    }
  }
  const scatter = (counts: Map<number, number>, weight: number) => {
    for (const [h, tf] of counts) {
      const mixed = fmix32(h)
      const value = weight * (1 + Math.log(tf))
      out[mixed % dimensions] += (mixed & 0x80000000) === 0 ? value : -value
    }
  }
  scatter(unigrams, WEIGHT_UNIGRAM)
  scatter(bigrams, WEIGHT_BIGRAM)
  scatter(chargrams, WEIGHT_CHARGRAM)

  let norm = 0
  for (let i = 0; i < dimensions; i++) norm += out[i] * out[i]
  // All features may collide and cancel exactly; fall back like an empty text rather than divide by 0.
  if (norm === 0) return new Array<number>(dimensions).fill(1 / Math.sqrt(dimensions))
  const inv = 1 / Math.sqrt(norm)
  const vector = new Array<number>(dimensions)
  for (let i = 0; i < dimensions; i++) vector[i] = out[i] * inv
  return vector
}

const LOCAL_LIMITS: ProviderLimits = {
  // In-process: the limits only keep a batch's memory and latency reasonable.
  maxInputsPerRequest: 2048,
  maxTokensPerInput: 8192,
  maxTokensPerRequest: 2048 * 8192
}

/**
 * The local provider at `dimensions`; plain constructor for tests and benchmarks. `kind` is ignored
 * (symmetric model).
 */
export const makeLocalProvider = (dimensions: number): EmbeddingProviderShape => ({
  provider: "local",
  model: LOCAL_MODEL,
  dimensions,
  limits: LOCAL_LIMITS,
  embed: Effect.fn("LocalProvider.embed")(function*(texts: ReadonlyArray<string>, _kind: EmbedKind) {
    yield* Effect.annotateCurrentSpan({ provider: "local", model: LOCAL_MODEL, inputs: texts.length })
    // In-process and free, but counted like any other call so the ledger shows what a run embeds.
    return withUsage(texts.map((text) => embedLocal(text, dimensions)), countedUsage(texts))
  })
})

/** The offline provider at EMBEDDING_DIMENSIONS; EMBEDDING_MODEL must be unset or local-hash-v1. */
export const LocalProviderLive: Layer.Layer<EmbeddingProvider, ProviderStartupError, AutoEmbedConfig> = Layer.effect(
  EmbeddingProvider,
  Effect.gen(function*() {
    const config = yield* AutoEmbedConfig
    if (Option.isSome(config.model) && config.model.value !== LOCAL_MODEL) {
      return yield* new ProviderStartupError({
        message:
          `EMBEDDING_MODEL=${config.model.value} is not a model of the local provider (it has one: ${LOCAL_MODEL}): ` +
          "unset EMBEDDING_MODEL, or set EMBEDDING_PROVIDER=ollama or openai"
      })
    }
    return makeLocalProvider(config.dimensions)
  })
)
