import { Cause, Duration, Effect, FiberSet, Option, Ref, Schema } from "effect"
import { AutoEmbedConfig } from "../config/AutoEmbedConfig.js"
import { costOf, priceOf } from "../config/Prices.js"
import { EXIT_CODES, type Failure, FailureTypeId, type HttpAnswer } from "../Failure.js"
import { utf8Bytes } from "../providers/EmbeddingProvider.js"
import { prefixFor, profileFor, type ProviderName } from "../providers/ModelProfiles.js"
import { modelKeyOf } from "../providers/ProviderSpec.js"
import { SetProviders } from "../sets/SetProviders.js"
import { SetRegistry } from "../sets/SetRegistry.js"
import { SetName } from "../sets/SetSchemas.js"
import type { Source } from "../sources/SourceCatalog.js"
import { Sources, type SourcesShape } from "../sources/Sources.js"
import { EmbeddingStore } from "../storage/EmbeddingStore.js"
import { sqlReason } from "../storage/SqlFailure.js"
import type { InputShape } from "../storage/StoreEstimate.js"
import { VectorIndex } from "../storage/VectorIndex.js"
import { type BackfillJob, BackfillJobs } from "./BackfillJobs.js"
import { type BatchOutcome, EmbeddingPipeline } from "./EmbeddingPipeline.js"

export type { BackfillJob, BackfillPhase, BackfillState } from "./BackfillJobs.js"

export const BackfillRequest = Schema.Struct({
  dryRun: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  entityTypes: Schema.optional(
    Schema.Array(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(63))).pipe(
      Schema.minItems(1),
      Schema.maxItems(50)
    )
  ),
  batchSize: Schema.optional(Schema.Int.pipe(Schema.between(1, 2048))),
  concurrency: Schema.optional(Schema.Int.pipe(Schema.between(1, 64))),
  limit: Schema.optional(Schema.Int.pipe(Schema.between(1, 100_000_000))),
  includeFailed: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  /**
   * Bulk path: drop the HNSW index, load, build it once. "auto" takes it above AUTOEMBED_BULK_THRESHOLD rows
   * of a type.
   */
  bulk: Schema.optionalWith(Schema.Literal("auto", "on", "off"), { default: () => "auto" as const }),
  /** Only this embedding set of the types (by name); default: every live set of each type. */
  set: Schema.optional(SetName)
})
export type BackfillRequest = typeof BackfillRequest.Type
export type BackfillInput = typeof BackfillRequest.Encoded

export class BackfillInvalid extends Schema.TaggedError<BackfillInvalid>()("BackfillInvalid", {
  message: Schema.String
}) implements Failure {
  get [FailureTypeId](): FailureTypeId {
    return FailureTypeId
  }
  get exitCode() {
    return EXIT_CODES.failed
  }
  get http(): HttpAnswer {
    return { status: 422, code: "invalid_request", message: this.message }
  }
}

export class BackfillNotFound extends Schema.TaggedError<BackfillNotFound>()("BackfillNotFound", {
  message: Schema.String,
  id: Schema.String
}) implements Failure {
  get [FailureTypeId](): FailureTypeId {
    return FailureTypeId
  }
  get exitCode() {
    return EXIT_CODES.failed
  }
  get http(): HttpAnswer {
    return { status: 404, code: "not_found", message: this.message, details: { id: this.id } }
  }
}

/** One set's share of a dry run: rows by state, and what embedding them would send and cost. */
export interface DryRunEntry {
  readonly missing: number
  readonly stale: number
  readonly failed: number
  /** `provider/model` the set embeds with. */
  readonly model: string
  /** Estimated input tokens of the rows a run would embed (see `DryRunReport.tokens`). */
  readonly tokens: number
  /** `tokens` at the model's price (0 when no price is known). */
  readonly costUsd: number
  /**
   * Factor applied to autoembed's count: the provider's reported tokens over autoembed's count of
   * the same inputs in the ledger; 1 until the model has reported enough (10,000 tokens) to say.
   */
  readonly calibration: number
}

export interface DryRunReport {
  readonly dryRun: true
  readonly entityTypes: Record<string, DryRunEntry>
  /** What a run would process (failed rows only with include_failed; capped by limit). */
  readonly total: number
  /**
   * Estimated input tokens of what a run would process: each row's text counted in the database
   * as the provider would be sent it (`estimateTokens`: model prefix included, capped at the
   * context), times the set's calibration; prorated when `limit` caps the run.
   */
  readonly tokens: number
  /** The estimate at each model's price (USD; `prices` in the configuration file, or the defaults). */
  readonly costUsd: number
}

/** A backfill gives up when nothing moved for this long (the provider is down, say). */
const STALL_TIMEOUT = Duration.minutes(2)
const POLL = Duration.millis(250)
/** Rows a run queues per source and statement. */
const QUEUE_PAGE = 5000

/** The request as the jobs table has always stored it (its wire keys), whatever the domain type's field names. */
const storedParams = (r: BackfillRequest) => ({
  dry_run: r.dryRun,
  entity_types: r.entityTypes,
  batch_size: r.batchSize,
  concurrency: r.concurrency,
  limit: r.limit,
  include_failed: r.includeFailed,
  bulk: r.bulk
})

/** The requested types, checked against the registered sources (all of them when none are asked). */
const resolveTypes = (sources: SourcesShape, requested: ReadonlyArray<string> | undefined) =>
  Effect.gen(function*() {
    if (!requested) return sources.names
    const unknown = requested.filter((t) => !sources.names.includes(t))
    if (unknown.length > 0) {
      return yield* new BackfillInvalid({
        message: `Unknown entity type ${unknown.map((u) => `"${u}"`).join(", ")}; known: ${sources.names.join(", ")}`
      })
    }
    return [...new Set(requested)]
  })

/**
 * The set keys a run works on: every live set of the requested types (the configured set first),
 * or the sets named `set`.
 */
const resolveKeys = (
  sources: SourcesShape,
  registry: SetRegistry,
  requested: ReadonlyArray<string> | undefined,
  set: string | undefined
) =>
  Effect.gen(function*() {
    const types = yield* resolveTypes(sources, requested)
    yield* registry.refresh
    const rows = (yield* registry.rows).filter((r) =>
      types.includes(r.source) && (set === undefined || r.name === set || r.key === set)
    )
    if (set !== undefined && rows.length === 0) {
      return yield* new BackfillInvalid({
        message: `No embedding set named "${set}" of ${types.join(", ")} (see: pnpm cli sets list)`
      })
    }
    if (set !== undefined) return rows.map((r) => r.key)
    // The configured set of every type, even before its row is recorded, then the others.
    return [...new Set([...types, ...rows.map((r) => r.key)])]
  })

/** The source object a set key is kept under (the workers' view, refreshed when new). */
const targetOf = ({ registry }: BackfillServices, key: string) =>
  Effect.flatMap(
    registry.target(key),
    (s): Effect.Effect<Source> => s ? Effect.succeed(s) : Effect.dieMessage(`autoembed: no set with key ${key}`)
  )

const noOutcome: BatchOutcome = { embedded: 0, failed: 0, skipped: 0, dropped: 0 }
const addOutcomes = (a: BatchOutcome, b: BatchOutcome): BatchOutcome => ({
  embedded: a.embedded + b.embedded,
  failed: a.failed + b.failed,
  skipped: a.skipped + b.skipped,
  dropped: a.dropped + b.dropped
})

/** How a run ended. */
interface RunEnd {
  readonly state: "succeeded" | "failed"
  readonly error: string | null
}

/** The services a backfill runs on. */
const backfillServices = Effect.all({
  store: EmbeddingStore,
  sources: Sources,
  registry: SetRegistry,
  vectorIndex: VectorIndex,
  config: AutoEmbedConfig,
  pipelines: EmbeddingPipeline,
  jobs: BackfillJobs,
  providers: SetProviders
})
type BackfillServices = Effect.Effect.Success<typeof backfillServices>

/** The rows a run over `types` would process, by state (failed rows only with `includeFailed`; capped by `limit`). */
const countWork = (
  services: BackfillServices,
  types: ReadonlyArray<string>,
  options: { readonly includeFailed: boolean; readonly limit?: number | undefined }
) =>
  Effect.gen(function*() {
    const targets = yield* Effect.forEach(types, (t) => targetOf(services, t))
    const counts = yield* services.store.counts({ withTotal: false }, targets)
    const entityTypes: Record<string, { missing: number; stale: number; failed: number }> = {}
    let total = 0
    for (const t of types) {
      const c = counts[t]
      entityTypes[t] = { missing: c.missing, stale: c.stale, failed: c.failed }
      total += c.missing + c.stale + (options.includeFailed ? c.failed : 0)
    }
    return { entityTypes, total: options.limit ? Math.min(total, options.limit) : total }
  })

/** How a set's texts reach its provider: the model's document prefix and context (see `prepareInputs`). */
const inputShapeOf = (spec: { readonly provider: string; readonly model: string }): InputShape => {
  const profile = profileFor(spec.provider as ProviderName, spec.model)
  return {
    prefixBytes: utf8Bytes(prefixFor(profile, "document")),
    // A provider autoembed has no profile of (a library user's own) gets the largest common context.
    contextTokens: profile.contextTokens ?? 8192
  }
}

/**
 * A dry run: the rows by state, and the tokens and cost embedding them would take, per set.
 * Tokens are counted in the database (one aggregate statement per set, see `estimateWork`).
 */
const estimateRun = (
  services: BackfillServices,
  types: ReadonlyArray<string>,
  options: { readonly includeFailed: boolean; readonly limit?: number | undefined }
) =>
  Effect.gen(function*() {
    const { config, providers, store } = services
    const counted = yield* countWork(services, types, options)
    const entityTypes: Record<string, DryRunEntry> = {}
    let rows = 0
    let tokens = 0
    let costUsd = 0
    for (const t of types) {
      const target = yield* targetOf(services, t)
      const spec = target.set?.spec ?? providers.own
      const model = modelKeyOf(spec)
      const work = yield* store.estimateWork(target, inputShapeOf(spec), options)
      const calibration = yield* store.tokenCalibration(model)
      const setTokens = Math.round(work.tokens * calibration)
      const setCost = costOf(setTokens, priceOf(config.prices, model))
      entityTypes[t] = { ...counted.entityTypes[t], model, tokens: setTokens, costUsd: setCost, calibration }
      rows += work.rows
      tokens += setTokens
      costUsd += setCost
    }
    // A limit cuts the run short: its share of the rows, at their average size.
    const share = options.limit !== undefined && rows > options.limit ? options.limit / rows : 1
    const report: DryRunReport = {
      dryRun: true,
      entityTypes,
      total: counted.total,
      tokens: Math.round(tokens * share),
      costUsd: costUsd * share
    }
    return report
  })

/** Queues every missing or stale row (the triggers already queued changed ones), page by page, up to `limit`. */
const queueAll = ({ store }: BackfillServices, types: ReadonlyArray<string>, limit: number | undefined) =>
  Effect.gen(function*() {
    let queued = 0
    while (limit === undefined || queued < limit) {
      const page = Math.min(QUEUE_PAGE, limit === undefined ? QUEUE_PAGE : limit - queued)
      const found = yield* store.discover(page, types)
      queued += found.queued
      if (found.queued === 0 && found.adopted === 0) break
    }
    return queued
  })

/**
 * Bulk path: large loads (or a bulk load that died half-way, found by its mark) write without
 * the HNSW index and build it once at the end. Drops the chosen types' indexes; returns them.
 */
const beginBulk = (
  services: BackfillServices,
  request: BackfillRequest,
  types: ReadonlyArray<string>,
  before: Effect.Effect.Success<ReturnType<typeof countWork>>
) =>
  Effect.gen(function*() {
    const { config } = services
    // The types are set keys: their own source objects carry the marks (an added set's included).
    const targets = yield* Effect.forEach(types, (t) => targetOf(services, t))
    const marked = new Set(
      (yield* services.vectorIndex.describe(targets)).filter((i) => i.bulkMark !== null).map((i) => i.source)
    )
    // A type with nothing to embed keeps its index even with bulk "on": dropping it would only
    // cost a rebuild and send its searches to exact scans meanwhile.
    const bulkTypes = types.filter((t) => {
      const work = before.entityTypes[t].missing + before.entityTypes[t].stale
      return marked.has(t) || (request.bulk === "on" && work > 0) ||
        (request.bulk === "auto" && work >= config.bulkThreshold)
    })
    for (const t of bulkTypes) {
      if (!marked.has(t)) yield* services.vectorIndex.beginBulk(yield* targetOf(services, t))
    }
    return bulkTypes
  })

/**
 * The job's progress: the larger of what this run's workers did and what left the queue (other
 * workers help), within the total.
 */
const publish = (
  { jobs, store }: BackfillServices,
  id: string,
  types: ReadonlyArray<string>,
  total: number,
  own: Ref.Ref<BatchOutcome>,
  end?: RunEnd
) =>
  Effect.gen(function*() {
    const o = yield* Ref.get(own)
    const remaining = yield* store.pendingCount(types)
    const ownProcessed = o.embedded + o.failed + o.skipped + o.dropped
    const processed = Math.max(0, Math.min(total, Math.max(ownProcessed, total - remaining)))
    const job = yield* jobs.update(id, (r) => ({
      ...r,
      state: end?.state ?? "running",
      total,
      processed,
      succeeded: o.embedded,
      failed: o.failed,
      skipped: o.skipped + o.dropped,
      error: end?.error ?? null
    }))
    return { job, remaining }
  })

/**
 * Embeds what the run queued with its own worker pool, until the queue is empty, the limit is
 * reached, or it stalls.
 */
const embedAll = (
  services: BackfillServices,
  id: string,
  request: BackfillRequest,
  types: ReadonlyArray<string>,
  total: number,
  onProgress: (job: BackfillJob) => Effect.Effect<void>
) =>
  Effect.scoped(
    Effect.gen(function*() {
      const own = yield* Ref.make<BatchOutcome>(noOutcome)
      const pipeline = yield* services.pipelines.start({
        sources: types,
        maxClaims: request.limit,
        batchSize: request.batchSize,
        concurrency: request.concurrency,
        sweep: false,
        onBatch: (o) => Ref.update(own, (s) => addOutcomes(s, o))
      })
      yield* pipeline.wake
      let lastProgress = Date.now()
      let lastProcessed = -1
      let lastPersist = 0
      while (true) {
        // A database poll, kept on purpose: `remaining` is counted in the database, where the
        // workers of other processes embed the same rows; no in-process signal can say when it is 0.
        yield* Effect.sleep(POLL)
        const { job, remaining } = yield* publish(services, id, types, total, own)
        yield* onProgress(job)
        if (Date.now() - lastPersist > 1000) {
          lastPersist = Date.now()
          yield* services.jobs.save(id)
        }
        const stats = yield* pipeline.stats
        const claimed = yield* pipeline.claimed
        const idle = stats.depth === 0 && stats.inFlight === 0
        if (idle && (remaining === 0 || (request.limit !== undefined && claimed >= request.limit))) {
          return { end: { state: "succeeded" as const, error: null }, own }
        }
        if (job.processed !== lastProcessed) {
          lastProcessed = job.processed
          lastProgress = Date.now()
        } else if (Date.now() - lastProgress > Duration.toMillis(STALL_TIMEOUT)) {
          return {
            end: {
              state: "failed" as const,
              error: `No progress for ${Duration.format(STALL_TIMEOUT)}${
                stats.lastError ? `; last provider error: ${stats.lastError}` : ""
              }`
            },
            own
          }
        }
      }
    })
  )

/** Marks a job that did not run to its end (cancelled, or failed by a defect) and saves it. */
const abandon = ({ jobs }: BackfillServices, id: string, state: "cancelled" | "failed", error?: string) =>
  Effect.zipRight(
    jobs.update(id, (r) => ({ ...r, state, error: error ?? r.error })),
    jobs.save(id)
  )

/** Runs a backfill to the end in this fiber; interrupting it gives claimed rows back at once. */
const runJob = (
  services: BackfillServices,
  id: string,
  request: BackfillRequest,
  types: ReadonlyArray<string>,
  onProgress: (job: BackfillJob) => Effect.Effect<void>
) =>
  Effect.gen(function*() {
    const { jobs, store, vectorIndex } = services
    if (request.includeFailed) yield* store.retryFailed(types)
    const before = yield* countWork(services, types, { includeFailed: false })
    const total = request.limit ? Math.min(before.total, request.limit) : before.total
    yield* jobs.update(id, (r) => ({ ...r, total }))
    yield* queueAll(services, types, request.limit)
    const bulkTypes = yield* beginBulk(services, request, types, before)
    yield* jobs.update(id, (r) => ({ ...r, phase: "embedding" as const, bulkTypes }))
    const { end, own } = yield* embedAll(services, id, request, types, total, onProgress)
    if (bulkTypes.length > 0) {
      // Also after a stalled run, so search is not left scanning exactly; an interrupted run
      // never gets here and leaves the mark for the next run to finish.
      yield* jobs.update(id, (r) => ({ ...r, phase: "indexing" as const }))
      yield* onProgress((yield* publish(services, id, types, total, own)).job)
      for (const t of bulkTypes) yield* vectorIndex.build(yield* targetOf(services, t))
    }
    const { job } = yield* publish(services, id, types, total, own, end)
    yield* onProgress(job)
    yield* jobs.save(id)
    return job
  }).pipe(Effect.onInterrupt(() => abandon(services, id, "cancelled")))

/**
 * Fills missing and stale embeddings. A run queues the rows in the durable queue page by page
 * (in SQL: no ids pass through memory), then a dedicated worker pool embeds them with the same
 * claims as every other worker, so an interrupted run resumes and two runs never duplicate work.
 * Its job's progress lives in `BackfillJobs`.
 */
export class Backfill extends Effect.Service<Backfill>()("@autoembed/core/Backfill", {
  dependencies: [EmbeddingPipeline.Default, BackfillJobs.Default],
  scoped: Effect.gen(function*() {
    const services = yield* backfillServices
    const { jobs, registry, sources, store } = services
    const running = yield* FiberSet.make()

    const dryRun = Effect.fn("Backfill.dryRun")(function*(input: BackfillInput = {}) {
      const request = Schema.decodeSync(BackfillRequest)(input)
      const types = yield* resolveKeys(sources, registry, request.entityTypes, request.set)
      return yield* estimateRun(services, types, { includeFailed: request.includeFailed, limit: request.limit })
    })

    const begin = (input: BackfillInput) =>
      Effect.gen(function*() {
        const request = yield* Schema.decodeUnknown(BackfillRequest)(input).pipe(
          Effect.mapError((e) => new BackfillInvalid({ message: e.message }))
        )
        const types = yield* resolveKeys(sources, registry, request.entityTypes, request.set)
        const job = yield* jobs.create(types, storedParams(request))
        return { job, request, types }
      })

    /** Runs a backfill in the caller's fiber, reporting progress; for the CLI. */
    const run = Effect.fn("Backfill.run")(
      function*(input: BackfillInput, onProgress: (job: BackfillJob) => Effect.Effect<void> = () => Effect.void) {
        const { job, request, types } = yield* begin(input)
        return yield* runJob(services, job.id, request, types, onProgress)
      }
    )

    /** Starts a backfill in the background and returns its job at once; for the API. */
    const start = Effect.fn("Backfill.start")(function*(input: BackfillInput) {
      const { job, request, types } = yield* begin(input)
      yield* FiberSet.run(
        running,
        runJob(services, job.id, request, types, () => Effect.void).pipe(
          Effect.catchAllCause((cause) =>
            abandon(services, job.id, "failed", sqlReason(Cause.squash(cause)).slice(0, 500))
          )
        )
      )
      return job
    })

    /** A job by id: from this process, or from the database when another process ran it. */
    const get = Effect.fn("Backfill.get")(function*(id: string) {
      const job = yield* jobs.get(id)
      if (Option.isNone(job)) return yield* new BackfillNotFound({ id, message: `No backfill job ${id}` })
      return job.value
    })

    const retryFailed = Effect.fn("Backfill.retryFailed")(function*(entityTypes?: ReadonlyArray<string>) {
      const types = yield* resolveTypes(sources, entityTypes)
      const requeued = yield* store.retryFailed(types)
      return { requeued }
    })

    /** Marks stale rows (another model's vectors) pending now instead of at the next sweep. */
    const reembed = Effect.fn("Backfill.reembed")(function*(entityTypes?: ReadonlyArray<string>) {
      const types = yield* resolveTypes(sources, entityTypes)
      return { queued: yield* queueAll(services, types, undefined) }
    })

    return { dryRun, run, start, get, retryFailed, reembed } as const
  })
}) {}
