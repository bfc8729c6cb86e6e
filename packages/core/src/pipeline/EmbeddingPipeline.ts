import {
  Chunk,
  Duration,
  Effect,
  Either,
  Fiber,
  Queue,
  Ref,
  Schedule,
  type Scope,
  Stream,
  SubscriptionRef
} from "effect"
import * as Os from "node:os"
import { AutoEmbedConfig, type AutoEmbedConfigShape } from "../config/AutoEmbedConfig.js"
import {
  type EmbeddingProviderShape,
  isRetryable,
  isSystemic,
  type ProviderError,
  splitByLimits,
  usageOf
} from "../providers/EmbeddingProvider.js"
import { modelKeyOf } from "../providers/ProviderSpec.js"
import { SetProviders } from "../sets/SetProviders.js"
import { SetRegistry } from "../sets/SetRegistry.js"
import { entityOf } from "../sources/SourceCatalog.js"
import type { Source } from "../sources/Sources.js"
import { Database } from "../storage/Database.js"
import { type ClaimedItem, EmbeddingStore, type LoadedRow } from "../storage/EmbeddingStore.js"
import { outageSchedule, sqlReason } from "../storage/SqlFailure.js"
import { PendingSignal } from "./PendingSignal.js"
import { PipelineMetrics } from "./PipelineMetrics.js"
import { ProviderCircuit } from "./ProviderCircuit.js"
import { providerRetrySchedule } from "./RetryPolicy.js"

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

/** A running pipeline, alive until the scope it was started in closes. */
export interface Pipeline {
  readonly workerId: string
  readonly model: string
  /** Rows claimed so far by this pipeline. */
  readonly claimed: Effect.Effect<number>
  /** Claim and queue now instead of at the next poll. */
  readonly wake: Effect.Effect<void>
  readonly stats: Effect.Effect<QueueStats>
}

/** The services a pipeline runs on, captured once by `EmbeddingPipeline`. */
const pipelineServices = Effect.all({
  config: AutoEmbedConfig,
  store: EmbeddingStore,
  providers: SetProviders,
  signal: PendingSignal,
  metrics: PipelineMetrics,
  database: Database,
  registry: SetRegistry,
  circuit: ProviderCircuit
})
type PipelineServices = Effect.Effect.Success<typeof pipelineServices>

/**
 * Claim tokens a worker holds, with how many of their rows are not finished yet. After a failed
 * claim, leases of this worker under any other token are ones it never heard of.
 */
const makeHeldClaims = () => {
  const held = new Map<string, number>()
  return {
    failed: false,
    tokens: () => [...held.keys()],
    hold: (items: ReadonlyArray<ClaimedItem>) => items.forEach((i) => held.set(i.token, (held.get(i.token) ?? 0) + 1)),
    letGo: (items: ReadonlyArray<ClaimedItem>) =>
      items.forEach((i) => {
        const n = (held.get(i.token) ?? 1) - 1
        if (n <= 0) held.delete(i.token)
        else held.set(i.token, n)
      })
  }
}

/** One pipeline's settings and state, shared by its loops and workers. */
const makeRun = (services: PipelineServices, options: PipelineOptions) =>
  Effect.gen(function*() {
    const config: AutoEmbedConfigShape = {
      ...services.config,
      batchSize: options.batchSize ?? services.config.batchSize,
      concurrency: options.concurrency ?? services.config.concurrency
    }
    const pausedUntil = yield* Ref.make(0)
    return {
      ...services,
      config,
      options,
      model: services.store.model,
      /** The set keys this pipeline claims: the given ones, or every set's (re-read as sets come and go). */
      only: options.sources === undefined
        ? Effect.map(services.registry.targets, (all) => all.map((s) => s.name))
        : Effect.succeed(options.sources),
      workerId: `${Os.hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`,
      claimedTotal: yield* Ref.make(0),
      queue: yield* Queue.bounded<ClaimedItem>(config.queueCapacity),
      // Claim only what the workers will start soon, so other processes get their share.
      prefetch: Math.max(1, Math.min(config.queueCapacity, config.batchSize * config.concurrency * 2)),
      providerPermits: yield* Effect.makeSemaphore(config.concurrency),
      pausedUntil,
      pause: (ms: number) => Ref.update(pausedUntil, (t) => Math.max(t, Date.now() + ms)),
      lastError: yield* Ref.make<string | null>(null),
      // A SubscriptionRef, so the shutdown can wait for it to reach 0 instead of polling it.
      inFlight: yield* SubscriptionRef.make(0),
      // Opened whenever the workers take a batch off the queue: the claim loop waits on it while the
      // queue is full enough.
      taken: yield* Effect.makeLatch(false),
      stopping: yield* Ref.make(false),
      retryPolicy: providerRetrySchedule({
        baseMs: config.retryBaseMs,
        maxMs: config.retryMaxMs,
        retries: config.retries
      }),
      held: makeHeldClaims()
    }
  })
type Run = Effect.Effect.Success<ReturnType<typeof makeRun>>

/** Leases ready rows up to the prefetch target (hook ids first); returns how many were claimed. */
const fill = (run: Run) =>
  Effect.gen(function*() {
    const { held, options, queue, signal, store, workerId } = run
    if ((yield* Ref.get(run.stopping)) || (yield* Ref.get(run.pausedUntil)) > Date.now()) return 0
    if (held.failed) {
      const released = yield* store.releaseUnheld(workerId, held.tokens())
      held.failed = false
      if (released > 0) yield* Effect.logInfo(`autoembed: gave back ${released} rows a failed claim had leased`)
    }
    const budget = options.maxClaims === undefined ? Infinity : options.maxClaims - (yield* Ref.get(run.claimedTotal))
    const free = Math.min(run.prefetch - Math.max(0, yield* Queue.size(queue)), budget)
    if (free <= 0) return 0
    // Hints belong to the long-running worker; a backfill pool claims by query only.
    const hints = options.sources === undefined && options.maxClaims === undefined
      ? Chunk.toReadonlyArray(yield* Queue.takeUpTo(signal.hints, free))
      : []
    const first = hints.length > 0 ? yield* store.claimKeys(hints, workerId) : []
    const rest = free - first.length > 0 ? yield* store.claimReady(free - first.length, workerId, yield* run.only) : []
    const claimed = [...first, ...rest]
    held.hold(claimed)
    yield* Ref.update(run.claimedTotal, (n) => n + claimed.length)
    if (claimed.length > 0) yield* Queue.offerAll(queue, claimed)
    return claimed.length
  })

const claimLoop = (run: Run) =>
  Effect.gen(function*() {
    const depth = Math.max(0, yield* Queue.size(run.queue))
    if (depth >= Math.max(1, run.prefetch / 2)) {
      yield* run.taken.close
      // Re-checked after closing, so a batch taken in between is not missed.
      if (Math.max(0, yield* Queue.size(run.queue)) >= Math.max(1, run.prefetch / 2)) yield* run.taken.await
      return
    }
    const n = yield* fill(run).pipe(
      Effect.catchAll((e) =>
        Effect.sync(() => {
          run.held.failed = true
        }).pipe(
          Effect.zipRight(Effect.logWarning(`autoembed: claiming failed; will retry (${e.message})`)),
          Effect.as(0)
        )
      )
    )
    if (n === 0) {
      yield* Effect.race(Queue.take(run.signal.wakes), Effect.sleep(Duration.millis(run.config.pollIntervalMs)))
    }
  }).pipe(Effect.forever)

/**
 * One sweep: pages until a page comes back short, so a restore or a newly attached table is
 * caught up in one round. Adopting vectors already in place scans the table against the
 * bookkeeping (160 ms per 100,000 rows here), so it runs at start and every tenth round only.
 */
const sweepLoop = ({ config, registry, signal, store }: Run) => {
  let sweeps = 0
  return Effect.gen(function*() {
    const adopt = sweeps++ % ADOPT_EVERY_SWEEPS === 0
    // Sets added or dropped by another process since the last sweep.
    yield* registry.refresh.pipe(Effect.catchAll((e) => Effect.logWarning("autoembed: reading the sets failed", e)))
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
}

/**
 * Wake-ups from the triggers' NOTIFY. A lost connection is reopened on a schedule (quick, then
 * every 2 s) for the life of the worker; each (re)start wakes the claimer once, since
 * notifications sent meanwhile are lost.
 */
const listenLoop = ({ config, database, signal }: Run) => {
  let listenLost = false
  return signal.wake.pipe(
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
}

/**
 * Releases rows whose batch failed, waiting (up to half a lease) for the database to answer.
 * Rows already completed or released are not touched: the claim token no longer matches.
 */
const giveBack = (run: Run, items: ReadonlyArray<ClaimedItem>) =>
  run.store.release(items, { delayMs: 0, countAttempt: false }).pipe(
    Effect.catchAll((e) =>
      Effect.logWarning(`autoembed: ${items.length} rows stay leased until their lease ends (${e.message})`)
    )
  )

/** At shutdown: a release may not wait out an outage (the drain is bounded); the lease covers the rest. */
const releaseNow = (run: Run, items: ReadonlyArray<ClaimedItem>) =>
  run.store.release(items, { delayMs: 0, countAttempt: false }).pipe(
    Effect.timeoutOption(Duration.seconds(2)),
    Effect.ignore
  )

/** Writes a group's vectors; rows whose text changed while it was embedded go back to the queue. */
const writeEmbedded = (
  { store }: Run,
  source: Source,
  pairs: ReadonlyArray<Pair>,
  vectors: ReadonlyArray<ReadonlyArray<number>>,
  outcome: BatchOutcome
) =>
  Effect.gen(function*() {
    const items = pairs.map((p) => p.item)
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
  })

/**
 * Whether a group may call its model now (see `ProviderCircuit`). While the circuit is open the rows
 * go back without spending an attempt (and the configured set's claiming pauses); the worker that
 * wins the probe sends one text first, and only a success closes the circuit for everyone.
 */
const passCircuit = (
  run: Run,
  source: Source,
  provider: EmbeddingProviderShape,
  model: string,
  items: ReadonlyArray<ClaimedItem>
) =>
  Effect.gen(function*() {
    const gate = yield* run.circuit.gate(model)
    if (gate._tag === "Closed") return true
    if (gate._tag === "Probe") {
      const probe = yield* Effect.either(provider.embed(["autoembed probe"], "document"))
      if (Either.isRight(probe)) {
        yield* Effect.logInfo(`autoembed: the provider for ${model} answers again; its circuit is closed`)
        yield* run.circuit.close(model)
        return true
      }
      if (isSystemic(probe.left)) yield* run.circuit.trip(model, describe(probe.left))
    }
    const waitMs = gate._tag === "Open" ? gate.retryInMs : run.config.breakerMs
    if (source.set === undefined) yield* run.pause(waitMs)
    yield* run.store.release(items, { delayMs: waitMs, countAttempt: false })
    return false
  })

/** Embeds a group of rows; a permanent failure of a group of several is split in two. */
const embedPairs = (
  run: Run,
  source: Source,
  provider: EmbeddingProviderShape,
  pairs: ReadonlyArray<Pair>,
  outcome: BatchOutcome
): Effect.Effect<void, never> =>
  Effect.gen(function*() {
    const { config, metrics, store } = run
    if (pairs.length === 0) return
    // The circuit and the ledger know a model by its provider's key (the set's own for another set).
    const model = modelKeyOf(provider)
    if (!(yield* passCircuit(run, source, provider, model, pairs.map((p) => p.item)))) return
    const result = yield* run.providerPermits.withPermits(1)(
      provider.embed(pairs.map((p) => p.row.text), "document").pipe(
        Effect.tapError((e) => metrics.recordProviderError(e.reason)),
        Effect.retry(run.retryPolicy)
      )
    ).pipe(Effect.either)
    if (Either.isRight(result)) {
      // Booked whether or not the write then succeeds: the provider has been paid either way.
      const usage = usageOf(pairs.map((p) => p.row.text), result.right)
      return yield* writeEmbedded(run, source, pairs, result.right, outcome).pipe(
        Effect.ensuring(store.recordUsage({
          source: entityOf(source),
          setKey: source.name,
          model,
          kind: "document",
          inputs: pairs.length,
          usage
        }))
      )
    }
    const items = pairs.map((p) => p.item)
    const e = result.left
    yield* Ref.set(run.lastError, `${new Date().toISOString()} ${describe(e)}`)
    if (isRetryable(e)) {
      // Still failing after the retry schedule: give the rows back for later and let the provider breathe.
      yield* Effect.logWarning(`autoembed: provider still failing after retries (${describe(e)}); pausing`)
      yield* run.pause(config.retryMaxMs)
      yield* store.release(items, { delayMs: config.retryMaxMs, error: describe(e), countAttempt: false })
      return
    }
    if (isSystemic(e)) {
      yield* Effect.logError(`autoembed: ${e.message}; the circuit for ${model} is open for every worker`)
      yield* run.circuit.trip(model, describe(e))
      // The configured provider failing stops all claiming; another set's only delays that set's rows.
      if (source.set === undefined) yield* run.pause(config.breakerMs)
      yield* store.release(items, { delayMs: config.breakerMs, error: describe(e), countAttempt: false })
      return
    }
    if (pairs.length > 1) {
      const mid = Math.ceil(pairs.length / 2)
      yield* embedPairs(run, source, provider, pairs.slice(0, mid), outcome)
      yield* embedPairs(run, source, provider, pairs.slice(mid), outcome)
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
        Effect.zipRight(giveBack(run, pairs.map((p) => p.item)))
      )
    )
  )

/** One source's rows of a batch: gone ones dropped, up-to-date ones completed, the rest embedded. */
const processSource = (run: Run, source: Source, items: ReadonlyArray<ClaimedItem>, outcome: BatchOutcome) =>
  Effect.gen(function*() {
    const { store } = run
    const provider = yield* run.providers.forSource(source)
    const rows = new Map((yield* store.loadTexts(source, items.map((i) => i.rowId))).map((r) => [r.rowId, r]))
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
      yield* embedPairs(run, source, provider, group, outcome)
    }
  })

const processBatch = (run: Run, batch: ReadonlyArray<ClaimedItem>) =>
  Effect.gen(function*() {
    const { metrics, options, registry, store } = run
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
      const source = yield* registry.target(name)
      if (source) {
        yield* processSource(run, source, items, outcome).pipe(
          // A set whose provider cannot be made here (no API key in this process): leave its rows for later.
          Effect.catchTag("ProviderStartupError", (e) =>
            Effect.logError(`autoembed: set ${source.set?.name ?? name}: ${e.message}`).pipe(
              Effect.zipRight(
                store.release(items, { delayMs: run.config.breakerMs, error: e.message, countAttempt: false })
              )
            ))
        )
      } else {
        // A source this process does not know (registered by another service): leave it to that service.
        yield* store.release(items, { delayMs: 60_000, countAttempt: false })
      }
    }
    yield* metrics.recordBatch({ ...outcome, latencyMs: Date.now() - started })
    if (options.onBatch) {
      yield* options.onBatch(outcome)
    }
  }).pipe(
    Effect.catchAll((e) =>
      Effect.logWarning(`autoembed: a batch failed; its rows go back to the queue (${e.message})`).pipe(
        Effect.zipRight(giveBack(run, batch))
      )
    ),
    // Interrupted mid-batch (shutdown): give the rows back at once instead of waiting out the lease.
    Effect.onInterrupt(() =>
      releaseNow(run, batch)
    ),
    Effect.ensuring(
      Ref.update(run.inFlight, (n) => n - batch.length).pipe(Effect.zipRight(Effect.sync(() => run.held.letGo(batch))))
    )
  )

const workers = (run: Run) =>
  Stream.fromQueue(run.queue).pipe(
    Stream.groupedWithin(run.config.batchSize, Duration.millis(run.config.batchWindowMs)),
    Stream.tap((chunk) => Ref.update(run.inFlight, (n) => n + Chunk.size(chunk)).pipe(Effect.zipRight(run.taken.open))),
    // Twice the provider concurrency, so database work of one batch overlaps provider calls of others.
    Stream.mapEffect((chunk) => processBatch(run, Chunk.toReadonlyArray(chunk)), {
      concurrency: run.config.concurrency * 2,
      unordered: true
    }),
    Stream.runDrain
  )

/** The graceful drain when the pipeline's scope closes. */
const shutdown = (run: Run, background: Fiber.RuntimeFiber<void>, workerFiber: Fiber.RuntimeFiber<void>) =>
  Effect.gen(function*() {
    const { inFlight, queue } = run
    yield* Ref.set(run.stopping, true)
    yield* Fiber.interrupt(background)
    // Rows claimed but not started go straight back.
    const waiting = Chunk.toReadonlyArray(yield* Queue.takeAll(queue))
    yield* releaseNow(run, waiting)
    run.held.letGo(waiting)
    yield* inFlight.changes.pipe(
      Stream.takeUntil((n) => n <= 0),
      Stream.runDrain,
      Effect.timeoutOption(Duration.millis(run.config.drainTimeoutMs))
    )
    yield* Fiber.interrupt(workerFiber)
    yield* Queue.shutdown(queue)
    // Whatever this pipeline still leases goes back now instead of when its lease ends: a claim whose
    // statement committed as the claim loop was interrupted, and rows the batcher had taken off the
    // queue but not yet started (seen under load: 40 rows locked after a clean SIGTERM drain).
    yield* run.store.releaseUnheld(run.workerId, []).pipe(Effect.timeoutOption(Duration.seconds(2)), Effect.ignore)
  })

const statsOf = (run: Run): Effect.Effect<QueueStats> =>
  Effect.gen(function*() {
    const { config } = run
    return {
      workerId: run.workerId,
      // Queue.size is negative while workers wait on an empty queue.
      depth: Math.max(0, yield* Queue.size(run.queue)),
      capacity: config.queueCapacity,
      inFlight: yield* Ref.get(run.inFlight),
      concurrency: config.concurrency,
      batchSize: config.batchSize,
      pausedForMs: Math.max(0, (yield* Ref.get(run.pausedUntil)) - Date.now()),
      lastError: yield* Ref.get(run.lastError),
      listening: yield* run.database.listening
    }
  })

const startPipeline = (services: PipelineServices, options: PipelineOptions) =>
  Effect.gen(function*() {
    const run = yield* makeRun(services, options)
    const workerFiber = yield* Effect.forkDaemon(workers(run))
    const loops = options.sweep === false
      ? [claimLoop(run), listenLoop(run)]
      : [claimLoop(run), sweepLoop(run), listenLoop(run)]
    const background = yield* Effect.forkDaemon(Effect.all(loops, { concurrency: "unbounded", discard: true }))
    yield* Effect.addFinalizer(() => shutdown(run, background, workerFiber))
    yield* Effect.logDebug(
      `autoembed: embedding workers started (${run.workerId}, ${run.database.kind}, ${run.model})`
    )
    const pipeline: Pipeline = {
      workerId: run.workerId,
      model: run.model,
      claimed: Ref.get(run.claimedTotal),
      wake: run.signal.wake,
      stats: statsOf(run)
    }
    return pipeline
  })

/**
 * Starts in-process embedding pipelines: a claimer that leases pending rows from the database into
 * a bounded queue (hook ids first), batching workers that call the provider with a retry schedule
 * outside any transaction, hash-guarded batched writes, bisection of permanently failing batches,
 * a sweeper for rows nobody queued, and a graceful drain when the scope a pipeline was started in
 * closes. The long-running workers (`EmbeddingQueue`) and each backfill run start one.
 */
export class EmbeddingPipeline extends Effect.Service<EmbeddingPipeline>()("@autoembed/core/EmbeddingPipeline", {
  effect: Effect.map(pipelineServices, (services) => ({
    start: (options: PipelineOptions = {}): Effect.Effect<Pipeline, never, Scope.Scope> =>
      startPipeline(services, options)
  }))
}) {}

/** `EmbeddingPipeline.start` from the services in context, for programs that do not build the service (benchmarks). */
export const makeEmbeddingPipeline = (options: PipelineOptions = {}) =>
  Effect.flatMap(pipelineServices, (services) => startPipeline(services, options))
