import { Effect } from "effect"
import { causeChain } from "../storage/SqlFailure.js"
import {
  DimensionMismatch,
  type Embeddings,
  type EmbedKind,
  estimateTokens,
  ProviderError,
  type ProviderLimits,
  splitByLimits,
  truncateToTokens,
  withUsage
} from "./EmbeddingProvider.js"
import { type ModelProfile, prefixFor } from "./ModelProfiles.js"

/** Applies the model's prefix for `kind`, then truncates to the model's context (see `truncateToTokens`). */
export const prepareInputs = (
  texts: ReadonlyArray<string>,
  kind: EmbedKind,
  profile: ModelProfile
): Array<string> => {
  const prefix = prefixFor(profile, kind)
  return texts.map((text) => truncateToTokens(prefix + text, profile.contextTokens))
}

/** What one request returned: its vectors and the input tokens the provider reported, if any. */
export interface RequestResult {
  readonly vectors: ReadonlyArray<ReadonlyArray<number>>
  /** The answer's token field as it came (checked by `reportedTokens`). */
  readonly reportedTokens: unknown
}

/**
 * A provider's reported token count, or undefined when it reported none usable: a missing or
 * non-numeric field, or 0 for inputs that hold text (some compatible servers send a 0 placeholder).
 */
export const reportedTokens = (value: unknown, counted: number): number | undefined =>
  typeof value === "number" && Number.isFinite(value) && value >= 0 && (value > 0 || counted === 0)
    ? Math.round(value)
    : undefined

/**
 * The shared shape of a provider's `embed`: prefix and truncate per the model, split into requests
 * within the provider's limits, call `request` for each group in order, and concatenate. The usage
 * sums the groups: what each reported, else its inputs counted as sent (prefixed and truncated).
 */
export const embedInGroups = <E>(
  texts: ReadonlyArray<string>,
  kind: EmbedKind,
  profile: ModelProfile,
  limits: ProviderLimits,
  request: (group: Array<string>) => Effect.Effect<RequestResult, E>
): Effect.Effect<Embeddings, E> =>
  Effect.gen(function*() {
    const out: Array<ReadonlyArray<number>> = []
    let tokens = 0
    let estimatedTokens = 0
    let countedTokens = 0
    let requests = 0
    for (const group of splitByLimits(prepareInputs(texts, kind, profile), limits)) {
      const result = yield* request(group)
      const counted = group.reduce((n, t) => n + estimateTokens(t), 0)
      const reported = reportedTokens(result.reportedTokens, counted)
      out.push(...result.vectors)
      countedTokens += counted
      tokens += reported ?? counted
      if (reported === undefined) estimatedTokens += counted
      requests += 1
    }
    return withUsage(out, { tokens, reported: estimatedTokens === 0, estimatedTokens, countedTokens, requests })
  })

/**
 * Checks a provider's answer: one vector per input, each of `dimensions` finite numbers that fit a float4.
 * Anything else is a BadResponse: writing it would corrupt the index silently.
 */
export const validateVectors = (
  provider: string,
  model: string,
  expectedCount: number,
  dimensions: number,
  vectors: unknown
): Effect.Effect<Array<Array<number>>, ProviderError> => {
  const bad = (message: string, cause?: unknown) =>
    Effect.fail(new ProviderError({ reason: "BadResponse", provider, message, cause }))
  if (!Array.isArray(vectors)) return bad(`${provider} answered without a list of embeddings`)
  if (vectors.length !== expectedCount) {
    return bad(`${provider} returned ${vectors.length} embeddings for ${expectedCount} inputs`)
  }
  for (let i = 0; i < vectors.length; i++) {
    const v: unknown = vectors[i]
    if (!Array.isArray(v)) return bad(`${provider} returned a non-array embedding at position ${i}`)
    if (v.length !== dimensions) {
      const message =
        `model ${model} returned ${v.length}-dimensional vectors but EMBEDDING_DIMENSIONS is ${dimensions}`
      return bad(message, new DimensionMismatch({ message, model, expected: dimensions, actual: v.length }))
    }
    for (let j = 0; j < v.length; j++) {
      const x: unknown = v[j]
      if (typeof x !== "number" || !Number.isFinite(x)) {
        return bad(`${provider} returned a non-finite number in embedding ${i} at position ${j}`)
      }
      // pgvector stores float4: a larger magnitude would become infinity, which it refuses.
      if (!Number.isFinite(Math.fround(x))) {
        return bad(
          `${provider} returned ${x} in embedding ${i} at position ${j}, beyond the float4 range pgvector stores`
        )
      }
    }
  }
  return Effect.succeed(vectors as Array<Array<number>>)
}

/** Go-style durations as OpenAI sends in `x-ratelimit-reset-*`: "20ms", "1s", "6m0s", "1h2m3.5s". */
export const parseDuration = (value: string): number | undefined => {
  const s = value.trim()
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s) * 1000
  const re = /(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)/g
  let total = 0
  let consumed = 0
  for (const m of s.matchAll(re)) {
    if (m.index !== consumed) return undefined
    consumed += m[0].length
    const n = Number(m[1])
    const unit = m[2]
    total += unit === "h" ?
      n * 3_600_000
      : unit === "m" ?
      n * 60_000
      : unit === "s" ?
      n * 1000
      : unit === "ms" ?
      n
      : unit === "ns" ?
      n / 1e6
      : n / 1000
  }
  return consumed === s.length && consumed > 0 ? total : undefined
}

type HeaderSource = { get(name: string): string | null } | Record<string, string | undefined> | undefined | null

const header = (headers: HeaderSource, name: string): string | undefined => {
  if (headers === undefined || headers === null) return undefined
  if (typeof (headers as { get?: unknown }).get === "function") {
    return (headers as { get(name: string): string | null }).get(name) ?? undefined
  }
  const rec = headers as Record<string, string | undefined>
  const key = Object.keys(rec).find((k) => k.toLowerCase() === name)
  return key === undefined ? undefined : rec[key]
}

/**
 * Milliseconds to wait before retrying, from (first found) `retry-after-ms`, `retry-after`
 * (seconds or an HTTP date), or the larger of `x-ratelimit-reset-requests` / `x-ratelimit-reset-tokens`.
 */
export const parseRetryAfter = (headers: HeaderSource, now: number = Date.now()): number | undefined => {
  const ms = header(headers, "retry-after-ms")
  if (ms !== undefined && ms.trim() !== "" && Number.isFinite(Number(ms)) && Number(ms) >= 0) return Number(ms)
  const ra = header(headers, "retry-after")
  if (ra !== undefined && ra.trim() !== "") {
    const seconds = Number(ra)
    if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000
    const date = Date.parse(ra)
    if (Number.isFinite(date)) return Math.max(0, date - now)
  }
  const resets = ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]
    .map((name) => header(headers, name))
    .map((v) => (v === undefined ? undefined : parseDuration(v)))
    .filter((v): v is number => v !== undefined)
  return resets.length > 0 ? Math.max(...resets) : undefined
}

/** The system error code (ECONNREFUSED, ENOTFOUND, ...) inside a fetch failure, if any. */
export const networkCode = (error: unknown): string | undefined => {
  for (const e of causeChain(error)) {
    if (typeof e.code === "string" && /^E[A-Z_]+$/.test(e.code)) return e.code
    // An AggregateError (one connection attempt per address) holds the attempts in `errors`.
    if (Array.isArray(e.errors) && e.errors.length > 0) {
      const inner = networkCode(e.errors[0])
      if (inner !== undefined) return inner
    }
  }
  return undefined
}

/**
 * The most specific reason of a network failure: the system code (ECONNREFUSED, ENOTFOUND, ...),
 * else the innermost cause's message (fetch itself refuses some ports with "bad port").
 */
export const failureDetail = (error: unknown): string =>
  networkCode(error) ?? errorMessage(causeChain(error).at(-1) ?? error)

export const errorMessage = (error: unknown): string =>
  error instanceof Error ? error.message : typeof error === "string" ? error : String(error)

/** Keeps messages on one line (server error bodies may hold newlines). */
export const oneLine = (s: string): string => s.replace(/\s+/g, " ").trim()
