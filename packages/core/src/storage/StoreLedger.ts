import { Cause, Clock, Duration, Effect } from "effect"
import { costOf, priceOf, type PriceTable } from "../config/Prices.js"
import type { EmbedKind, EmbedUsage } from "../providers/EmbeddingProvider.js"
import { sqlReason } from "./SqlFailure.js"
import type { StoreContext } from "./StoreContext.js"

/** One provider call to book: who asked (source and set), which model, what for, and what it used. */
export interface LedgerEntry {
  /** The source (entity type) the texts belong to. */
  readonly source: string
  /** The embedding set's key (`<source>` for the configured set, `<source>@<n>` for others). */
  readonly setKey: string
  /** `provider/model`. */
  readonly model: string
  readonly kind: EmbedKind
  /** Texts embedded. */
  readonly inputs: number
  readonly usage: EmbedUsage
}

/** Tokens and their cost over a window. */
export interface UsageFigures {
  readonly tokens: number
  readonly costUsd: number
}

/** A ledger line: one source, set, model and kind, over the windows. */
export interface LedgerLine {
  readonly source: string
  readonly set: string
  readonly model: string
  readonly kind: EmbedKind
  /** USD per 1M input tokens used for the cost; null when no price is known (counted as 0). */
  readonly usdPerMillionTokens: number | null
  readonly hour: UsageFigures
  readonly day: UsageFigures
  readonly total: UsageFigures
  /** Of the total, tokens autoembed counted because the provider reported none. */
  readonly estimatedTokens: number
  readonly requests: number
  readonly inputs: number
}

/**
 * The ledger's figures. Windows are whole clock hours (UTC): `hour` is the current hour so far,
 * `day` the current hour and the 23 before it, `total` everything recorded.
 */
export interface LedgerSummary {
  readonly hour: UsageFigures
  readonly day: UsageFigures
  readonly total: UsageFigures
  readonly lines: ReadonlyArray<LedgerLine>
}

const HOUR_MS = 3_600_000
/** A ledger write waits no longer than this: a database outage must not hold a worker's batch. */
const RECORD_TIMEOUT = Duration.seconds(5)
/** Calibration needs this many reported tokens before it trusts the provider's ratio to autoembed's count. */
const CALIBRATION_MIN_TOKENS = 10_000

const hourOf = (millis: number) => new Date(Math.floor(millis / HOUR_MS) * HOUR_MS).toISOString()

interface LineRow {
  source: string
  set_key: string
  model: string
  kind: EmbedKind
  hour_tokens: number
  day_tokens: number
  total_tokens: number
  estimated: number
  requests: number
  inputs: number
}

const figures = (tokens: number, price: number | undefined): UsageFigures => ({
  tokens,
  costUsd: costOf(tokens, price)
})

const sumFigures = (all: ReadonlyArray<UsageFigures>): UsageFigures => ({
  tokens: all.reduce((n, f) => n + f.tokens, 0),
  costUsd: all.reduce((n, f) => n + f.costUsd, 0)
})

/**
 * The token and cost ledger in autoembed's schema: one upsert per provider call, never inside a
 * claim or write transaction, and never failing its caller (tokens already spent are worth a log
 * line, not a lost batch).
 */
export const makeStoreLedger = ({ sql, st }: StoreContext) => {
  /** Adds a call's usage to its hour's row. Logs and goes on when the database refuses. */
  const recordUsage = (entry: LedgerEntry): Effect.Effect<void> =>
    Effect.gen(function*() {
      const { usage } = entry
      const hour = hourOf(yield* Clock.currentTimeMillis)
      yield* sql`
        INSERT INTO ${st.ledger} AS l
          (hour, source, set_key, model, kind, tokens, estimated_tokens, counted_tokens, inputs, requests)
        VALUES (${hour}::timestamptz, ${entry.source}, ${entry.setKey}, ${entry.model}, ${entry.kind},
          ${usage.tokens}, ${usage.estimatedTokens}, ${usage.countedTokens}, ${entry.inputs}, ${usage.requests})
        ON CONFLICT (hour, source, set_key, model, kind) DO UPDATE SET
          tokens = l.tokens + EXCLUDED.tokens,
          estimated_tokens = l.estimated_tokens + EXCLUDED.estimated_tokens,
          counted_tokens = l.counted_tokens + EXCLUDED.counted_tokens,
          inputs = l.inputs + EXCLUDED.inputs,
          requests = l.requests + EXCLUDED.requests`
    }).pipe(
      Effect.timeoutFail({ duration: RECORD_TIMEOUT, onTimeout: () => new Error("no answer within 5 s") }),
      Effect.catchAllCause((cause) =>
        Cause.isInterruptedOnly(cause) ? Effect.interrupt : Effect.logWarning(
          `autoembed: the token ledger missed ${entry.usage.tokens} tokens of ${entry.setKey} ` +
            `(${sqlReason(Cause.squash(cause))}); embedding goes on`
        )
      ),
      Effect.withSpan("EmbeddingStore.recordUsage")
    )

  /** Tokens and cost per source, set, model and kind over the last hour, day and in total. */
  const ledgerSummary = (prices: PriceTable) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const hourStart = hourOf(now)
      const dayStart = hourOf(now - 23 * HOUR_MS)
      // Sums as float8: exact to 2^53 tokens, and the drivers return it as a number, not a string.
      const rows = yield* sql<LineRow>`
        SELECT source, set_key, model, kind,
          coalesce(sum(tokens) FILTER (WHERE hour >= ${hourStart}::timestamptz), 0)::float8 AS hour_tokens,
          coalesce(sum(tokens) FILTER (WHERE hour >= ${dayStart}::timestamptz), 0)::float8 AS day_tokens,
          sum(tokens)::float8 AS total_tokens,
          sum(estimated_tokens)::float8 AS estimated,
          sum(requests)::float8 AS requests,
          sum(inputs)::float8 AS inputs
        FROM ${st.ledger}
        GROUP BY source, set_key, model, kind
        ORDER BY source, set_key, model, kind`
      const lines = rows.map((r): LedgerLine => {
        const price = priceOf(prices, r.model)
        return {
          source: r.source,
          set: r.set_key,
          model: r.model,
          kind: r.kind,
          usdPerMillionTokens: price ?? null,
          hour: figures(r.hour_tokens, price),
          day: figures(r.day_tokens, price),
          total: figures(r.total_tokens, price),
          estimatedTokens: r.estimated,
          requests: r.requests,
          inputs: r.inputs
        }
      })
      const summary: LedgerSummary = {
        hour: sumFigures(lines.map((l) => l.hour)),
        day: sumFigures(lines.map((l) => l.day)),
        total: sumFigures(lines.map((l) => l.total)),
        lines
      }
      return summary
    }).pipe(Effect.withSpan("EmbeddingStore.ledgerSummary"))

  /**
   * How a model's provider bills relative to autoembed's count (`estimateTokens`), from the
   * requests it reported usage for: 1 until it has reported enough tokens to say.
   */
  const tokenCalibration = (model: string) =>
    Effect.gen(function*() {
      const [r] = yield* sql<{ reported: number; counted: number }>`
        SELECT coalesce(sum(tokens - estimated_tokens), 0)::float8 AS reported,
               coalesce(sum(counted_tokens - estimated_tokens), 0)::float8 AS counted
        FROM ${st.ledger} WHERE model = ${model} AND kind = 'document'`
      if (r === undefined || r.reported < CALIBRATION_MIN_TOKENS || r.counted <= 0) return 1
      return Math.min(5, Math.max(0.2, r.reported / r.counted))
    }).pipe(Effect.withSpan("EmbeddingStore.tokenCalibration"))

  return { recordUsage, ledgerSummary, tokenCalibration } as const
}
