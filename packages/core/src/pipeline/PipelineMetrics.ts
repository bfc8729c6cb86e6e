import { Effect, Ref } from "effect"
import type { ProviderErrorReason } from "../providers/EmbeddingProvider.js"

const LATENCY_BUCKETS_MS = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000] as const
const SEARCH_BUCKETS_MS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500] as const
/** Throughput is kept per 10-second slot for the last 15 minutes. */
const SLOT_MS = 10_000
const SLOTS = 90

export interface Histogram {
  readonly buckets: ReadonlyArray<number>
  readonly counts: ReadonlyArray<number>
  readonly sum: number
  readonly count: number
}

export interface MetricsSnapshot {
  readonly embedded: number
  readonly failed: number
  readonly skipped: number
  readonly dropped: number
  readonly batches: number
  readonly providerErrors: Readonly<Record<string, number>>
  readonly batchLatency: Histogram
  readonly searchLatency: Histogram
  readonly searches: number
  /** Rows embedded per 10 s slot, oldest first, ending with the current slot. */
  readonly throughput: ReadonlyArray<{ readonly at: string; readonly embedded: number }>
}

interface State {
  embedded: number
  failed: number
  skipped: number
  dropped: number
  batches: number
  searches: number
  providerErrors: Record<string, number>
  batch: { counts: Array<number>; sum: number; count: number }
  search: { counts: Array<number>; sum: number; count: number }
  slots: Map<number, number>
}

const observe = (h: State["batch"], buckets: ReadonlyArray<number>, ms: number) => {
  for (let i = 0; i < buckets.length; i++) if (ms <= buckets[i]) h.counts[i]++
  h.sum += ms
  h.count++
}

/** In-process counters of this worker/API process, for /metrics, status and the page. */
export class PipelineMetrics extends Effect.Service<PipelineMetrics>()("@autoembed/core/PipelineMetrics", {
  effect: Effect.gen(function*() {
    const state = yield* Ref.make<State>({
      embedded: 0,
      failed: 0,
      skipped: 0,
      dropped: 0,
      batches: 0,
      searches: 0,
      providerErrors: {},
      batch: { counts: LATENCY_BUCKETS_MS.map(() => 0), sum: 0, count: 0 },
      search: { counts: SEARCH_BUCKETS_MS.map(() => 0), sum: 0, count: 0 },
      slots: new Map()
    })
    const update = (f: (s: State) => void) => Ref.update(state, (s) => (f(s), s))
    return {
      recordBatch: (
        outcome: { embedded: number; failed: number; skipped: number; dropped: number; latencyMs: number }
      ) =>
        update((s) => {
          s.embedded += outcome.embedded
          s.failed += outcome.failed
          s.skipped += outcome.skipped
          s.dropped += outcome.dropped
          s.batches++
          observe(s.batch, LATENCY_BUCKETS_MS, outcome.latencyMs)
          const slot = Math.floor(Date.now() / SLOT_MS)
          s.slots.set(slot, (s.slots.get(slot) ?? 0) + outcome.embedded)
          for (const k of s.slots.keys()) if (k <= slot - SLOTS) s.slots.delete(k)
        }),
      recordProviderError: (reason: ProviderErrorReason) =>
        update((s) => {
          s.providerErrors[reason] = (s.providerErrors[reason] ?? 0) + 1
        }),
      recordSearch: (latencyMs: number) =>
        update((s) => {
          s.searches++
          observe(s.search, SEARCH_BUCKETS_MS, latencyMs)
        }),
      snapshot: Effect.map(Ref.get(state), (s): MetricsSnapshot => {
        const now = Math.floor(Date.now() / SLOT_MS)
        const throughput: Array<{ at: string; embedded: number }> = []
        for (let k = now - SLOTS + 1; k <= now; k++) {
          throughput.push({ at: new Date(k * SLOT_MS).toISOString(), embedded: s.slots.get(k) ?? 0 })
        }
        return {
          embedded: s.embedded,
          failed: s.failed,
          skipped: s.skipped,
          dropped: s.dropped,
          batches: s.batches,
          searches: s.searches,
          providerErrors: { ...s.providerErrors },
          batchLatency: {
            buckets: LATENCY_BUCKETS_MS,
            counts: [...s.batch.counts],
            sum: s.batch.sum,
            count: s.batch.count
          },
          searchLatency: {
            buckets: SEARCH_BUCKETS_MS,
            counts: [...s.search.counts],
            sum: s.search.sum,
            count: s.search.count
          },
          throughput
        }
      })
    }
  })
}) {}
