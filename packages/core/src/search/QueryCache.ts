import { Deferred, Effect, Exit, FiberId, Layer } from "effect"
import type { EmbedKind } from "../providers/EmbeddingProvider.js"

/** Default bound: 1,000 query vectors of 1024 floats is about 8 MB. */
export const QUERY_CACHE_CAPACITY = 1000

export interface QueryCacheStats {
  readonly size: number
  readonly capacity: number
  readonly hits: number
  readonly misses: number
}

/**
 * A bounded LRU of query vectors keyed by model key + kind + text, so a repeated search does not
 * call the provider again. The key includes the model, so switching models never reuses a vector.
 * Failures are not cached. Concurrent misses on the same key make one provider call: the first
 * computes, the others wait for its result (a burst of the same search, a page polling, costs one
 * embedding, not one each); if the first is interrupted, a waiter computes instead.
 *
 * Not Effect's `Cache`: in effect 3.22 it evicts by load order, not recency (a hit is tracked under
 * a new key node while the node from the miss stays first in line), and a miss whose entry is then
 * invalidated or expires (every failure) leaves its node behind until an eviction pops it, so a long
 * provider outage with the cache not full grows memory without bound.
 */
export const makeQueryCache = (capacity: number = QUERY_CACHE_CAPACITY) =>
  Effect.sync(() => {
    const bound = Math.max(1, Math.trunc(capacity))
    // A Map iterates in insertion order: re-inserting on a hit moves the key to the young end,
    // so the first key is always the least recently used.
    const entries = new Map<string, ReadonlyArray<number>>()
    const inFlight = new Map<string, Deferred.Deferred<ReadonlyArray<number>, unknown>>()
    let hits = 0
    let misses = 0
    const keyOf = (modelKey: string, kind: EmbedKind, text: string) => `${modelKey}\u0000${kind}\u0000${text}`

    const get = (modelKey: string, kind: EmbedKind, text: string): ReadonlyArray<number> | undefined => {
      const key = keyOf(modelKey, kind, text)
      const found = entries.get(key)
      if (found !== undefined) {
        entries.delete(key)
        entries.set(key, found)
      }
      return found
    }

    const set = (modelKey: string, kind: EmbedKind, text: string, vector: ReadonlyArray<number>): void => {
      const key = keyOf(modelKey, kind, text)
      entries.delete(key)
      entries.set(key, vector)
      while (entries.size > bound) entries.delete(entries.keys().next().value!)
    }

    return {
      capacity: bound,
      /** The cached vector, or `compute()`'s result stored for next time. */
      getOrCompute: <E, R>(
        modelKey: string,
        kind: EmbedKind,
        text: string,
        compute: Effect.Effect<ReadonlyArray<number>, E, R>
      ): Effect.Effect<ReadonlyArray<number>, E, R> => {
        const key = keyOf(modelKey, kind, text)
        const lookup: Effect.Effect<ReadonlyArray<number>, E, R> = Effect.suspend(() => {
          const cached = get(modelKey, kind, text)
          if (cached !== undefined) {
            hits++
            return Effect.succeed(cached)
          }
          const pending = inFlight.get(key)
          if (pending !== undefined) {
            hits++
            // The same key's computation fails with the same error type; interrupted, compute here.
            return Effect.flatMap(Deferred.await(pending).pipe(Effect.exit), (exit) =>
              Exit.isInterrupted(exit) ? lookup : (exit as Exit.Exit<ReadonlyArray<number>, E>))
          }
          misses++
          const deferred = Deferred.unsafeMake<ReadonlyArray<number>, unknown>(FiberId.none)
          inFlight.set(key, deferred)
          return compute.pipe(
            Effect.tap((vector) =>
              Effect.sync(() => set(modelKey, kind, text, vector))
            ),
            Effect.onExit((exit) =>
              Effect.sync(() => inFlight.delete(key)).pipe(Effect.zipRight(Deferred.done(deferred, exit)))
            )
          )
        })
        return lookup
      },
      stats: Effect.sync((): QueryCacheStats => ({ size: entries.size, capacity: bound, hits, misses })),
      clear: Effect.sync(() => {
        entries.clear()
      })
    }
  })

export class QueryCache extends Effect.Service<QueryCache>()("@autoembed/core/QueryCache", {
  effect: makeQueryCache()
}) {
  /** A cache of another size (tests, memory-constrained deployments). */
  static readonly layer = (capacity: number): Layer.Layer<QueryCache> =>
    Layer.effect(QueryCache, Effect.map(makeQueryCache(capacity), (shape) => QueryCache.make(shape)))
}
