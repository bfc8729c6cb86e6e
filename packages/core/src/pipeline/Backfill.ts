import * as SqlClient from "@effect/sql/SqlClient"
import { Cause, Context, Duration, Effect, FiberSet, Ref, Schema, Scope } from "effect"
import { AutoEmbedConfig } from "../config/AutoEmbedConfig.js"
import { EmbeddingProvider } from "../providers/EmbeddingProvider.js"
import { Sources } from "../sources/Sources.js"
import type { Database } from "../storage/Database.js"
import type { ActiveModel } from "../storage/ActiveModel.js"
import { EmbeddingStore } from "../storage/EmbeddingStore.js"
import { sqlReason } from "../storage/SqlFailure.js"
import { stateTables } from "../storage/State.js"
import { VectorIndex } from "../storage/VectorIndex.js"
import { type BatchOutcome, makeEmbeddingPipeline } from "./EmbeddingQueue.js"
import type { PendingSignal } from "./PendingSignal.js"
import type { PipelineMetrics } from "./PipelineMetrics.js"

export const BackfillRequest = Schema.Struct({
  dry_run: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  entity_types: Schema.optional(
    Schema.Array(Schema.String.pipe(Schema.minLength(1), Schema.maxLength(63))).pipe(
      Schema.minItems(1),
      Schema.maxItems(50)
    )
  ),
  batch_size: Schema.optional(Schema.Int.pipe(Schema.between(1, 2048))),
  concurrency: Schema.optional(Schema.Int.pipe(Schema.between(1, 64))),
  limit: Schema.optional(Schema.Int.pipe(Schema.between(1, 100_000_000))),
  include_failed: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  /** Bulk path: drop the HNSW index, load, build it once. "auto" takes it above AUTOEMBED_BULK_THRESHOLD rows of a type. */
  bulk: Schema.optionalWith(Schema.Literal("auto", "on", "off"), { default: () => "auto" as const })
})
export type BackfillRequest = typeof BackfillRequest.Type
export type BackfillInput = typeof BackfillRequest.Encoded

export class BackfillInvalid extends Schema.TaggedError<BackfillInvalid>()("BackfillInvalid", {
  message: Schema.String
}) {}

export class BackfillNotFound extends Schema.TaggedError<BackfillNotFound>()("BackfillNotFound", {
  message: Schema.String,
  id: Schema.String
}) {}

export interface DryRunReport {
  readonly dry_run: true
  readonly entity_types: Record<string, { readonly missing: number; readonly stale: number; readonly failed: number }>
  /** What a run would process (failed rows only with include_failed; capped by limit). */
  readonly total: number
}

export type BackfillState = "running" | "succeeded" | "failed" | "cancelled"

export type BackfillPhase = "queueing" | "embedding" | "indexing" | "done"

export interface BackfillJob {
  readonly id: string
  readonly state: BackfillState
  readonly phase: BackfillPhase
  /** Types loaded on the bulk path (index dropped during the load, built once at the end). */
  readonly bulk_types: ReadonlyArray<string>
  readonly entity_types: ReadonlyArray<string>
  readonly total: number
  readonly processed: number
  readonly succeeded: number
  readonly failed: number
  readonly skipped: number
  readonly rate_per_second: number
  readonly eta_seconds: number | null
  readonly elapsed_seconds: number
  readonly started_at: string
  readonly finished_at: string | null
  readonly error: string | null
}

/** A backfill gives up when nothing moved for this long (the provider is down, say). */
const STALL_TIMEOUT = Duration.minutes(2)
const POLL = Duration.millis(250)

const newId = () => `bf_${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`

/**
 * Fills missing and stale embeddings. A run queues the rows in the durable queue page by page
 * (in SQL: no ids pass through memory), then a dedicated worker pool embeds them with the same
 * claims as every other worker, so an interrupted run resumes and two runs never duplicate work.
 */
export class Backfill extends Effect.Service<Backfill>()("@autoembed/core/Backfill", {
  scoped: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const store = yield* EmbeddingStore
    const sources = yield* Sources
    const provider = yield* EmbeddingProvider
    const vectorIndex = yield* VectorIndex
    const config = yield* AutoEmbedConfig
    // The backfill's own worker pool is built from the same services as the long-running one.
    // Without the layer's own Scope: the pool must close with its run, not with the application.
    const context = Context.omit(Scope.Scope)(
      yield* Effect.context<
        AutoEmbedConfig | ActiveModel | Database | EmbeddingStore | EmbeddingProvider | PendingSignal | PipelineMetrics | Sources
      >()
    )
    const st = stateTables(sql, config.stateSchema)
    const jobs = new Map<string, Ref.Ref<BackfillJob>>()
    const running = yield* FiberSet.make()

    const resolveTypes = (requested: ReadonlyArray<string> | undefined) =>
      Effect.gen(function*() {
        if (!requested) return sources.names
        const unknown = requested.filter((t) => !sources.names.includes(t))
        if (unknown.length > 0) {
          return yield* new BackfillInvalid({
            message: `Unknown entity type ${unknown.map((u) => `"${u}"`).join(", ")}; known: ${
              sources.names.join(", ")
            }`
          })
        }
        return [...new Set(requested)]
      })

    const dryRun = Effect.fn("Backfill.dryRun")(function*(input: BackfillInput = {}) {
      const request = Schema.decodeSync(BackfillRequest)(input)
      const types = yield* resolveTypes(request.entity_types)
      const counts = yield* store.counts({ withTotal: false })
      const entity_types: DryRunReport["entity_types"] = {}
      let total = 0
      for (const t of types) {
        const c = counts[t]
        entity_types[t] = { missing: c.missing, stale: c.stale, failed: c.failed }
        total += c.missing + c.stale + (request.include_failed ? c.failed : 0)
      }
      const report: DryRunReport = {
        dry_run: true,
        entity_types,
        total: request.limit ? Math.min(total, request.limit) : total
      }
      return report
    })

    const pendingCount = (types: ReadonlyArray<string>) =>
      Effect.map(
        sql<
          { n: number }
        >`SELECT count(*)::int AS n FROM ${st.queue} WHERE failed_at IS NULL AND source = ANY(${types}::text[])`,
        (r) => r[0]?.n ?? 0
      )

    const persistJob = (job: BackfillJob, params: unknown) =>
      sql`
        INSERT INTO ${st.jobs} (id, state, params, total, processed, succeeded, failed, skipped, error, started_at, updated_at, finished_at)
        VALUES (${job.id}, ${job.state}, ${
        JSON.stringify(params)
      }::jsonb, ${job.total}, ${job.processed}, ${job.succeeded}, ${job.failed}, ${job.skipped},
                ${job.error}, ${job.started_at}::timestamptz, now(), ${job.finished_at}::timestamptz)
        ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, total = EXCLUDED.total, processed = EXCLUDED.processed,
          succeeded = EXCLUDED.succeeded, failed = EXCLUDED.failed, skipped = EXCLUDED.skipped, error = EXCLUDED.error,
          updated_at = now(), finished_at = EXCLUDED.finished_at`.pipe(Effect.ignore)

    /** Runs a backfill to the end in this fiber; interrupting it gives claimed rows back at once. */
    const runJob = (
      id: string,
      request: BackfillRequest,
      types: ReadonlyArray<string>,
      onProgress: (job: BackfillJob) => Effect.Effect<void>
    ) =>
      Effect.gen(function*() {
        const started = Date.now()
        const jobRef = jobs.get(id)!
        const own = yield* Ref.make<BatchOutcome>({ embedded: 0, failed: 0, skipped: 0, dropped: 0 })
        if (request.include_failed) yield* store.retryFailed(types)
        const before = yield* dryRun({ entity_types: [...types], include_failed: false })
        let total = before.total
        if (request.limit) total = Math.min(total, request.limit)
        yield* Ref.update(jobRef, (j) => ({ ...j, total }))

        // Queue every missing or stale row (the triggers already queued changed ones), page by page.
        let queued = 0
        while (request.limit === undefined || queued < request.limit) {
          const page = Math.min(5000, request.limit === undefined ? 5000 : request.limit - queued)
          const found = yield* store.discover(page, types)
          queued += found.queued
          if (found.queued === 0 && found.adopted === 0) break
        }

        // Bulk path: large loads (or a bulk load that died half-way, found by its mark) write
        // without the HNSW index and build it once at the end.
        const marked = new Set((yield* vectorIndex.describe()).filter((i) => i.bulkMark !== null).map((i) => i.source))
        // A type with nothing to embed keeps its index even with bulk "on": dropping it would only
        // cost a rebuild and send its searches to exact scans meanwhile.
        const bulkTypes = types.filter((t) => {
          const work = before.entity_types[t].missing + before.entity_types[t].stale
          return marked.has(t) || (request.bulk === "on" && work > 0) ||
            (request.bulk === "auto" && work >= config.bulkThreshold)
        })
        for (const t of bulkTypes) {
          if (!marked.has(t)) yield* vectorIndex.beginBulk(yield* sources.get(t))
        }
        yield* Ref.update(jobRef, (j) => ({ ...j, phase: "embedding" as const, bulk_types: bulkTypes }))

        const publish = (state: BackfillState, error: string | null = null) =>
          Effect.gen(function*() {
            const o = yield* Ref.get(own)
            const remaining = yield* pendingCount(types)
            const ownProcessed = o.embedded + o.failed + o.skipped + o.dropped
            const byQueue = total - remaining
            const processed = Math.max(0, Math.min(total, Math.max(ownProcessed, byQueue)))
            const elapsed = (Date.now() - started) / 1000
            const rate = elapsed > 0 ? processed / elapsed : 0
            const finished = state !== "running"
            const job: BackfillJob = {
              ...(yield* Ref.get(jobRef)),
              state,
              total,
              processed: finished && state === "succeeded"
                ? Math.max(processed, Math.min(total, ownProcessed))
                : processed,
              succeeded: o.embedded,
              failed: o.failed,
              skipped: o.skipped + o.dropped,
              rate_per_second: Math.round(rate * 10) / 10,
              eta_seconds: finished ? 0 : rate > 0 ? Math.ceil((total - processed) / rate) : null,
              elapsed_seconds: Math.round(elapsed * 10) / 10,
              phase: finished ? "done" : (yield* Ref.get(jobRef)).phase,
              finished_at: finished ? new Date().toISOString() : null,
              error
            }
            yield* Ref.set(jobRef, job)
            yield* onProgress(job)
            return { job, remaining }
          })

        const outcome = yield* Effect.provide(
          Effect.scoped(
            Effect.gen(function*() {
              const pipeline = yield* makeEmbeddingPipeline({
                sources: types,
                maxClaims: request.limit,
                batchSize: request.batch_size,
                concurrency: request.concurrency,
                sweep: false,
                onBatch: (o) =>
                  Ref.update(own, (s) => ({
                    embedded: s.embedded + o.embedded,
                    failed: s.failed + o.failed,
                    skipped: s.skipped + o.skipped,
                    dropped: s.dropped + o.dropped
                  }))
              })
              yield* pipeline.wake
              let lastProgress = Date.now()
              let lastProcessed = -1
              let lastPersist = 0
              while (true) {
                yield* Effect.sleep(POLL)
                const { job, remaining } = yield* publish("running")
                if (Date.now() - lastPersist > 1000) {
                  lastPersist = Date.now()
                  yield* persistJob(job, request)
                }
                const stats = yield* pipeline.stats
                const claimed = yield* pipeline.claimed
                const idle = stats.depth === 0 && stats.inFlight === 0
                if (idle && (remaining === 0 || (request.limit !== undefined && claimed >= request.limit))) {
                  return { state: "succeeded" as const, error: null }
                }
                if (job.processed !== lastProcessed) {
                  lastProcessed = job.processed
                  lastProgress = Date.now()
                } else if (Date.now() - lastProgress > Duration.toMillis(STALL_TIMEOUT)) {
                  return {
                    state: "failed" as const,
                    error: `No progress for ${Duration.format(STALL_TIMEOUT)}${
                      stats.lastError ? `; last provider error: ${stats.lastError}` : ""
                    }`
                  }
                }
              }
            })
          ),
          context
        )
        if (bulkTypes.length > 0) {
          // Also after a stalled run, so search is not left scanning exactly; an interrupted run
          // never gets here and leaves the mark for the next run to finish.
          yield* Ref.update(jobRef, (j) => ({ ...j, phase: "indexing" as const }))
          yield* publish("running")
          for (const t of bulkTypes) yield* vectorIndex.build(yield* sources.get(t))
        }
        const { job } = yield* publish(outcome.state, outcome.error)
        yield* persistJob(job, request)
        return job
      }).pipe(
        Effect.onInterrupt(() =>
          Effect.gen(function*() {
            const ref = jobs.get(id)!
            const job = { ...(yield* Ref.get(ref)), state: "cancelled" as const, finished_at: new Date().toISOString() }
            yield* Ref.set(ref, job)
            yield* persistJob(job, request)
          })
        )
      )

    const begin = (input: BackfillInput) =>
      Effect.gen(function*() {
        const request = yield* Schema.decodeUnknown(BackfillRequest)(input).pipe(
          Effect.mapError((e) => new BackfillInvalid({ message: e.message }))
        )
        const types = yield* resolveTypes(request.entity_types)
        const id = newId()
        const job: BackfillJob = {
          id,
          state: "running",
          phase: "queueing",
          bulk_types: [],
          entity_types: types,
          total: 0,
          processed: 0,
          succeeded: 0,
          failed: 0,
          skipped: 0,
          rate_per_second: 0,
          eta_seconds: null,
          elapsed_seconds: 0,
          started_at: new Date().toISOString(),
          finished_at: null,
          error: null
        }
        jobs.set(id, yield* Ref.make(job))
        yield* persistJob(job, request)
        return { id, request, types }
      })

    /** Runs a backfill in the caller's fiber, reporting progress; for the CLI. */
    const run = Effect.fn("Backfill.run")(
      function*(input: BackfillInput, onProgress: (job: BackfillJob) => Effect.Effect<void> = () => Effect.void) {
        const { id, request, types } = yield* begin(input)
        return yield* runJob(id, request, types, onProgress)
      }
    )

    /** Starts a backfill in the background and returns its job at once; for the API. */
    const start = Effect.fn("Backfill.start")(function*(input: BackfillInput) {
      const { id, request, types } = yield* begin(input)
      yield* FiberSet.run(
        running,
        runJob(id, request, types, () => Effect.void).pipe(
          Effect.catchAllCause((cause) =>
            Effect.gen(function*() {
              const ref = jobs.get(id)!
              const job = {
                ...(yield* Ref.get(ref)),
                state: "failed" as const,
                error: sqlReason(Cause.squash(cause)).slice(0, 500),
                finished_at: new Date().toISOString()
              }
              yield* Ref.set(ref, job)
              yield* persistJob(job, request)
            })
          )
        )
      )
      return yield* Ref.get(jobs.get(id)!)
    })

    /** A job by id: from this process, or from the database when another process ran it. */
    const get = Effect.fn("Backfill.get")(function*(id: string) {
      const local = jobs.get(id)
      if (local) return yield* Ref.get(local)
      const rows = yield* sql<{
        id: string
        state: BackfillState
        params: any
        total: number
        processed: number
        succeeded: number
        failed: number
        skipped: number
        error: string | null
        started_at: Date | null
        created_at: Date
        finished_at: Date | null
        updated_at: Date
      }>`SELECT * FROM ${st.jobs} WHERE id = ${id}`
      if (rows.length === 0) return yield* new BackfillNotFound({ id, message: `No backfill job ${id}` })
      const r = rows[0]
      const params = typeof r.params === "string" ? JSON.parse(r.params) : r.params
      const started = new Date(r.started_at ?? r.created_at).getTime()
      const end = r.finished_at ? new Date(r.finished_at).getTime() : new Date(r.updated_at).getTime()
      const elapsed = Math.max(0, (end - started) / 1000)
      const rate = elapsed > 0 ? Number(r.processed) / elapsed : 0
      const job: BackfillJob = {
        id: r.id,
        state: r.state,
        phase: r.state === "running" ? "embedding" : "done",
        bulk_types: [],
        entity_types: params?.entity_types ?? sources.names,
        total: Number(r.total),
        processed: Number(r.processed),
        succeeded: Number(r.succeeded),
        failed: Number(r.failed),
        skipped: Number(r.skipped),
        rate_per_second: Math.round(rate * 10) / 10,
        eta_seconds: r.state === "running" && rate > 0
          ? Math.ceil((Number(r.total) - Number(r.processed)) / rate)
          : r.state === "running"
          ? null
          : 0,
        elapsed_seconds: Math.round(elapsed * 10) / 10,
        started_at: new Date(started).toISOString(),
        finished_at: r.finished_at ? new Date(r.finished_at).toISOString() : null,
        error: r.error
      }
      return job
    })

    const retryFailed = Effect.fn("Backfill.retryFailed")(function*(entityTypes?: ReadonlyArray<string>) {
      const types = yield* resolveTypes(entityTypes)
      const requeued = yield* store.retryFailed(types)
      return { requeued }
    })

    /** Marks stale rows (another model's vectors) pending now instead of at the next sweep. */
    const reembed = Effect.fn("Backfill.reembed")(function*(entityTypes?: ReadonlyArray<string>) {
      const types = yield* resolveTypes(entityTypes)
      let queued = 0
      while (true) {
        const found = yield* store.discover(5000, types)
        queued += found.queued
        if (found.queued === 0 && found.adopted === 0) break
      }
      return { queued }
    })

    return { dryRun, run, start, get, retryFailed, reembed } as const
  })
}) {}
