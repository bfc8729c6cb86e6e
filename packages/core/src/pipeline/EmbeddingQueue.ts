import { Chunk, Duration, Effect, Either, Fiber, Queue, Ref, Schedule, Stream } from "effect"
import * as Os from "node:os"
import { AutoEmbedConfig } from "../config/AutoEmbedConfig.js"
import {
  EmbeddingProvider,
  isRetryable,
  isSystemic,
  type ProviderError,
  splitByLimits
} from "../providers/EmbeddingProvider.js"
import { type Source, Sources } from "../sources/Sources.js"
import { Database } from "../storage/Database.js"
import { type ClaimedItem, EmbeddingStore, type LoadedRow } from "../storage/EmbeddingStore.js"
import { outageSchedule, sqlReason } from "../storage/SqlFailure.js"
import { PendingSignal } from "./PendingSignal.js"
import { PipelineMetrics } from "./PipelineMetrics.js"
import { providerRetrySchedule } from "./RetryPolicy.js"

/** How long the queue pauses after an error that affects every request (bad key, unknown model). */
const SYSTEMIC_PAUSE_MS = 30_000
/** Rows a sweep adopts or queues per source and statement before it looks again. */
const SWEEP_PAGE = 1000
const ADOPT_EVERY_SWEEPS = 10

interface Pair {
  readonly item: ClaimedItem
  readonly row: LoadedRow
}

export interface BatchOutcome {
  embedded: number
  failed: number
  skipped: number
  dropped: number
}

export interface QueueStats {
  readonly workerId: string
  readonly depth: number
  readonly capacity: number
  readonly inFlight: number
  readonly concurrency: number
  readonly batchSize: number
  readonly pausedForMs: number
  readonly lastError: string | null
  /** A LISTEN connection is up: notifications wake the workers at once (else they poll). */
  readonly listening: boolean
}

const describe = (e: ProviderError) => `${e.reason}: ${e.message}`.slice(0, 1000)

export interface PipelineOptions {
  /** Only these sources (default: all). */
  readonly sources?: ReadonlyArray<string>
  /** Stop claiming after this many rows (a backfill `--limit`). */
  readonly maxClaims?: number
  readonly batchSize?: number
  readonly concurrency?: number
  /** Look for unqueued rows periodically (the long-running worker does; a backfill enqueues itself). */
  readonly sweep?: boolean
  /** Called after every batch with what it did (backfill progress). */
  readonly onBatch?: (outcome: BatchOutcome) => Effect.Effect<void>
}

/**
 * The in-process embedding pipeline: a claimer that leases pending rows from the database into a
 * bounded queue (hook ids first), batching workers that call the provider with a retry schedule
 * outside any transaction, hash-guarded batched writes, bisection of permanently failing batches,
 * a sweeper for rows nobody queued, and a graceful drain when its scope closes.
 */
export const makeEmbeddingPipeline = (options: PipelineOptions = {}) =>
  Effect.gen(function*() {
    const baseConfig = yield* AutoEmbedConfig
    const config = {
      ...baseConfig,
      batchSize: options.batchSize ?? baseConfig.batchSize,
      concurrency: options.concurrency ?? baseConfig.concurrency
    }
    const store = yield* EmbeddingStore
    const provider = yield* EmbeddingProvider
    const signal = yield* PendingSignal
    const metrics = yield* PipelineMetrics
    const database = yield* Database
    const sources = yield* Sources
    const model = store.model
    const only = options.sources ?? sources.names
    const claimedTotal = yield* Ref.make(0)
    const workerId = `${Os.hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`

    const queue = yield* Queue.bounded<ClaimedItem>(config.queueCapacity)
    // Claim only what the workers will start soon, so other processes get their share.
    const prefetch = Math.max(1, Math.min(config.queueCapacity, config.batchSize * config.concurrency * 2))
    const providerPermits = yield* Effect.makeSemaphore(config.concurrency)
    const pausedUntil = yield* Ref.make(0)
    const lastError = yield* Ref.make<string | null>(null)
    const inFlight = yield* Ref.make(0)
    const stopping = yield* Ref.make(false)
    const retryPolicy = providerRetrySchedule({
      baseMs: config.retryBaseMs,
      maxMs: config.retryMaxMs,
      retries: config.retries
    })

    // Claim tokens this worker holds, with how many of their rows are not finished yet. After a
    // failed claim, leases of this worker under any other token are ones it never heard of.
    const held = new Map<string, number>()
    const hold = (items: ReadonlyArray<ClaimedItem>) =>
      items.forEach((i) => held.set(i.token, (held.get(i.token) ?? 0) + 1))
    const letGo = (items: ReadonlyArray<ClaimedItem>) =>
      items.forEach((i) => {
        const n = (held.get(i.token) ?? 1) - 1
        if (n <= 0) held.delete(i.token)
        else held.set(i.token, n)
      })
    let claimFailed = false

    const pause = (ms: number) => Ref.update(pausedUntil, (t) => Math.max(t, Date.now() + ms))

    /** Leases ready rows up to the prefetch target; returns how many were claimed. */
    const fill = Effect.gen(function*() {
      if ((yield* Ref.get(stopping)) || (yield* Ref.get(pausedUntil)) > Date.now()) return 0
      if (claimFailed) {
        const released = yield* store.releaseUnheld(workerId, [...held.keys()])
        claimFailed = false
        if (released > 0) yield* Effect.logInfo(`autoembed: gave back ${released} rows a failed claim had leased`)
      }
      const budget = options.maxClaims === undefined ? Infinity : options.maxClaims - (yield* Ref.get(claimedTotal))
      const free = Math.min(prefetch - Math.max(0, yield* Queue.size(queue)), budget)
      if (free <= 0) return 0
      // Hints belong to the long-running worker; a backfill pool claims by query only.
      const hints = options.sources === undefined && options.maxClaims === undefined
        ? Chunk.toReadonlyArray(yield* Queue.takeUpTo(signal.hints, free))
        : []
      const first = hints.length > 0 ? yield* store.claimKeys(hints, workerId) : []
      const rest = free - first.length > 0 ? yield* store.claimReady(free - first.length, workerId, only) : []
      const claimed = [...first, ...rest]
      hold(claimed)
      yield* Ref.update(claimedTotal, (n) => n + claimed.length)
      if (claimed.length > 0) yield* Queue.offerAll(queue, claimed)
      return claimed.length
    })

    const claimLoop = Effect.gen(function*() {
      const depth = Math.max(0, yield* Queue.size(queue))
      if (depth >= Math.max(1, prefetch / 2)) {
        yield* Effect.sleep(Duration.millis(10))
        return
      }
      const n = yield* fill.pipe(
        Effect.catchAll((e) =>
          Effect.sync(() => {
            claimFailed = true
          }).pipe(
            Effect.zipRight(Effect.logWarning(`autoembed: claiming failed; will retry (${e.message})`)),
            Effect.as(0)
          )
        )
      )
      if (n === 0) yield* Effect.race(Queue.take(signal.wakes), Effect.sleep(Duration.millis(config.pollIntervalMs)))
    }).pipe(Effect.forever)

    /**
     * One sweep: pages until a page comes back short, so a restore or a newly attached table is
     * caught up in one round. Adopting vectors already in place scans the table against the
     * bookkeeping (160 ms per 100,000 rows here), so it runs at start and every tenth round only.
     */
    let sweeps = 0
    const sweepLoop = Effect.gen(function*() {
      const adopt = sweeps++ % ADOPT_EVERY_SWEEPS === 0
      while (true) {
        const found = yield* store.discover(SWEEP_PAGE, undefined, { adopt }).pipe(
          Effect.catchAll((e) =>
            Effect.as(Effect.logWarning("autoembed: sweep failed; will retry", e.message), { adopted: 0, queued: 0 })
          )
        )
        if (found.adopted > 0) {
          yield* Effect.logInfo(
            `autoembed: sweeper adopted ${found.adopted} vectors that were in place before autoembed`
          )
        }
        if (found.queued > 0) {
          yield* Effect.logInfo(`autoembed: sweeper queued ${found.queued} rows that were not pending`)
          yield* signal.wake
        }
        if (found.adopted < SWEEP_PAGE && found.queued < SWEEP_PAGE) return
      }
    }).pipe(Effect.repeat(Schedule.spaced(Duration.millis(config.sweepIntervalMs))))

    /**
     * Wake-ups from the triggers' NOTIFY. A lost connection is reopened on a schedule (quick, then
     * every 2 s) for the life of the worker; each (re)start wakes the claimer once, since
     * notifications sent meanwhile are lost.
     */
    let listenLost = false
    const listenLoop = signal.wake.pipe(
      Effect.zipRight(
        database.listen("autoembed_pending").pipe(
          Stream.tap(() =>
            listenLost
              ? Effect.sync(() => {
                listenLost = false
              }).pipe(Effect.zipRight(Effect.logInfo("autoembed: LISTEN connection is back; wake-ups are live again")))
              : Effect.void
          ),
          Stream.runForEach(() => signal.wake)
        )
      ),
      Effect.tapError((e) =>
        listenLost ? Effect.void : Effect.sync(() => {
          listenLost = true
        }).pipe(
          Effect.zipRight(
            Effect.logWarning(
              `autoembed: LISTEN failed (${
                sqlReason(e)
              }); reconnecting, polling every ${config.pollIntervalMs} ms meanwhile`
            )
          )
        )
      ),
      Effect.retry(outageSchedule(Duration.infinity)),
      Effect.catchAllCause(() => Effect.void)
    )

    /**
     * Releases rows whose batch failed, waiting (up to half a lease) for the database to answer.
     * Rows already completed or released are not touched: the claim token no longer matches.
     */
    const giveBack = (items: ReadonlyArray<ClaimedItem>) =>
      store.release(items, { delayMs: 0, countAttempt: false }).pipe(
        Effect.catchAll((e) =>
          Effect.logWarning(`autoembed: ${items.length} rows stay leased until their lease ends (${e.message})`)
        )
      )

    /** At shutdown: a release may not wait out an outage (the drain is bounded); the lease covers the rest. */
    const releaseNow = (items: ReadonlyArray<ClaimedItem>) =>
      store.release(items, { delayMs: 0, countAttempt: false }).pipe(
        Effect.timeoutOption(Duration.seconds(2)),
        Effect.ignore
      )

    /** Embeds a group of rows; a permanent failure of a group of several is split in two. */
    const embedPairs = (
      source: Source,
      pairs: ReadonlyArray<Pair>,
      outcome: BatchOutcome
    ): Effect.Effect<void, never> =>
      Effect.gen(function*() {
        if (pairs.length === 0) return
        const result = yield* providerPermits.withPermits(1)(
          provider.embed(pairs.map((p) => p.row.text), "document").pipe(
            Effect.tapError((e) => metrics.recordProviderError(e.reason)),
            Effect.retry(retryPolicy)
          )
        ).pipe(Effect.either)
        const items = pairs.map((p) => p.item)
        if (Either.isRight(result)) {
          const vectors = result.right
          const written = new Set(
            yield* store.writeVectors(
              source,
              pairs.map((p, i) => ({ rowId: p.row.rowId, hash: p.row.hash, vector: vectors[i] }))
            )
          )
          const done = items.filter((i) => written.has(i.rowId))
          // Not written: the text changed while it was embedded; it is pending again for the new text.
          const changed = items.filter((i) => !written.has(i.rowId))
          yield* store.complete(done)
          yield* store.release(changed, { delayMs: 0, countAttempt: false })
          outcome.embedded += done.length
          return
        }
        const e = result.left
        yield* Ref.set(lastError, `${new Date().toISOString()} ${describe(e)}`)
        if (isRetryable(e)) {
          // Still failing after the retry schedule: give the rows back for later and let the provider breathe.
          yield* Effect.logWarning(`autoembed: provider still failing after retries (${describe(e)}); pausing`)
          yield* pause(config.retryMaxMs)
          yield* store.release(items, { delayMs: config.retryMaxMs, error: describe(e), countAttempt: false })
          return
        }
        if (isSystemic(e)) {
          yield* Effect.logError(`autoembed: ${e.message}`)
          yield* pause(SYSTEMIC_PAUSE_MS)
          yield* store.release(items, { delayMs: SYSTEMIC_PAUSE_MS, error: describe(e), countAttempt: false })
          return
        }
        if (pairs.length > 1) {
          const mid = Math.ceil(pairs.length / 2)
          yield* embedPairs(source, pairs.slice(0, mid), outcome)
          yield* embedPairs(source, pairs.slice(mid), outcome)
          return
        }
        const item = items[0]
        if (e.reason === "InvalidInput" || item.attempts + 1 >= config.maxAttempts) {
          yield* store.fail(items, describe(e))
          yield* Effect.logWarning(`autoembed: ${item.source} ${item.rowId} failed: ${describe(e)}`)
          outcome.failed += 1
        } else {
          yield* store.release(items, {
            delayMs: config.retryBaseMs * 2 ** item.attempts,
            error: describe(e),
            countAttempt: true
          })
        }
      }).pipe(
        // The database stayed away longer than a statement waits (half a lease): give the rows back
        // as soon as it answers again, rather than leave them to the lease.
        Effect.catchAll((e) =>
          Effect.logWarning(`autoembed: writing a batch failed; its rows go back to the queue (${e.message})`).pipe(
            Effect.zipRight(giveBack(pairs.map((p) => p.item)))
          )
        )
      )

    const processBatch = (batch: ReadonlyArray<ClaimedItem>) =>
      Effect.gen(function*() {
        const started = Date.now()
        const outcome: BatchOutcome = { embedded: 0, failed: 0, skipped: 0, dropped: 0 }
        const held = yield* store.renew(batch)
        const bySource = new Map<string, Array<ClaimedItem>>()
        for (const item of held) {
          const list = bySource.get(item.source)
          if (list) list.push(item)
          else bySource.set(item.source, [item])
        }
        for (const [name, items] of bySource) {
          const source = sources.all.find((s) => s.name === name)
          if (!source) {
            // A source this process does not know (registered by another service): leave it to that service.
            yield* store.release(items, { delayMs: 60_000, countAttempt: false })
            continue
          }
          const rows = new Map(
            (yield* store.loadTexts(source, items.map((i) => i.rowId))).map((r) => [r.rowId, r])
          )
          const gone = items.filter((i) => !rows.has(i.rowId))
          const upToDate = items.filter((i) => rows.get(i.rowId)?.upToDate === true)
          const todo = items.filter((i) => rows.has(i.rowId) && !rows.get(i.rowId)!.upToDate).map((item) => ({
            item,
            row: rows.get(item.rowId)!
          }))
          yield* store.drop(gone)
          yield* store.complete(upToDate)
          outcome.dropped += gone.length
          outcome.skipped += upToDate.length
          for (const group of splitByLimits(todo, provider.limits, (p) => p.row.text)) {
            yield* embedPairs(source, group, outcome)
          }
        }
        yield* metrics.recordBatch({ ...outcome, latencyMs: Date.now() - started })
        if (options.onBatch) {
          yield* options.onBatch(outcome)
        }
      }).pipe(
        Effect.catchAll((e) =>
          Effect.logWarning(`autoembed: a batch failed; its rows go back to the queue (${e.message})`).pipe(
            Effect.zipRight(giveBack(batch))
          )
        ),
        // Interrupted mid-batch (shutdown): give the rows back at once instead of waiting out the lease.
        Effect.onInterrupt(() => releaseNow(batch)),
        Effect.ensuring(
          Ref.update(inFlight, (n) => n - batch.length).pipe(Effect.zipRight(Effect.sync(() => letGo(batch))))
        )
      )

    const workers = Stream.fromQueue(queue).pipe(
      Stream.groupedWithin(config.batchSize, Duration.millis(config.batchWindowMs)),
      Stream.tap((chunk) => Ref.update(inFlight, (n) => n + Chunk.size(chunk))),
      // Twice the provider concurrency, so database work of one batch overlaps provider calls of others.
      Stream.mapEffect((chunk) => processBatch(Chunk.toReadonlyArray(chunk)), {
        concurrency: config.concurrency * 2,
        unordered: true
      }),
      Stream.runDrain
    )

    const workerFiber = yield* Effect.forkDaemon(workers)
    const loops = options.sweep === false ? [claimLoop, listenLoop] : [claimLoop, sweepLoop, listenLoop]
    const background = yield* Effect.forkDaemon(Effect.all(loops, { concurrency: "unbounded", discard: true }))

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        yield* Ref.set(stopping, true)
        yield* Fiber.interrupt(background)
        // Rows claimed but not started go straight back.
        const waiting = Chunk.toReadonlyArray(yield* Queue.takeAll(queue))
        yield* releaseNow(waiting)
        letGo(waiting)
        yield* Effect.gen(function*() {
          while ((yield* Ref.get(inFlight)) > 0) yield* Effect.sleep(Duration.millis(20))
        }).pipe(Effect.timeoutOption(Duration.millis(baseConfig.drainTimeoutMs)))
        yield* Fiber.interrupt(workerFiber)
        yield* Queue.shutdown(queue)
      })
    )

    yield* Effect.logDebug(`autoembed: embedding workers started (${workerId}, ${database.kind}, ${model})`)

    return {
      workerId,
      model,
      /** Rows claimed so far by this pipeline. */
      claimed: Ref.get(claimedTotal),
      /** Claim and queue now instead of at the next poll. */
      wake: signal.wake,
      stats: Effect.gen(function*() {
        const stats: QueueStats = {
          workerId,
          // Queue.size is negative while workers wait on an empty queue.
          depth: Math.max(0, yield* Queue.size(queue)),
          capacity: config.queueCapacity,
          inFlight: yield* Ref.get(inFlight),
          concurrency: config.concurrency,
          batchSize: config.batchSize,
          pausedForMs: Math.max(0, (yield* Ref.get(pausedUntil)) - Date.now()),
          lastError: yield* Ref.get(lastError),
          listening: yield* database.listening
        }
        return stats
      })
    }
  })

/** The long-running embedding workers of this process (all sources, sweeper on). */
export class EmbeddingQueue extends Effect.Service<EmbeddingQueue>()("@autoembed/core/EmbeddingQueue", {
  scoped: makeEmbeddingPipeline()
}) {}
