import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Option, Ref } from "effect"
import { AutoEmbedConfig } from "../config/AutoEmbedConfig.js"
import { Sources } from "../sources/Sources.js"
import { stateTables } from "../storage/State.js"

export type BackfillState = "running" | "succeeded" | "failed" | "cancelled"

export type BackfillPhase = "queueing" | "embedding" | "indexing" | "done"

export interface BackfillJob {
  readonly id: string
  readonly state: BackfillState
  readonly phase: BackfillPhase
  /** Types loaded on the bulk path (index dropped during the load, built once at the end). */
  readonly bulkTypes: ReadonlyArray<string>
  readonly entityTypes: ReadonlyArray<string>
  readonly total: number
  readonly processed: number
  readonly succeeded: number
  readonly failed: number
  readonly skipped: number
  readonly ratePerSecond: number
  readonly etaSeconds: number | null
  readonly elapsedSeconds: number
  readonly startedAt: string
  readonly finishedAt: string | null
  readonly error: string | null
}

/** What a job is; the rest of a `BackfillJob` (rate, ETA, elapsed time) is derived from it. */
export interface JobRecord
  extends Omit<BackfillJob, "ratePerSecond" | "etaSeconds" | "elapsedSeconds" | "startedAt" | "finishedAt">
{
  /** Epoch milliseconds. */
  readonly startedAt: number
  readonly finishedAt: number | null
}

const tenths = (n: number) => Math.round(n * 10) / 10

/**
 * The one place a `BackfillJob` is assembled: a finished job is in phase "done" with no time
 * left; a running one's rate and ETA are measured up to `now`.
 */
export const assembleJob = (r: JobRecord, now: number): BackfillJob => {
  const running = r.state === "running"
  const elapsed = Math.max(0, ((r.finishedAt ?? now) - r.startedAt) / 1000)
  const rate = elapsed > 0 ? r.processed / elapsed : 0
  return {
    id: r.id,
    state: r.state,
    phase: running ? r.phase : "done",
    bulkTypes: r.bulkTypes,
    entityTypes: r.entityTypes,
    total: r.total,
    processed: r.processed,
    succeeded: r.succeeded,
    failed: r.failed,
    skipped: r.skipped,
    ratePerSecond: tenths(rate),
    etaSeconds: !running ? 0 : rate > 0 ? Math.ceil((r.total - r.processed) / rate) : null,
    elapsedSeconds: tenths(elapsed),
    startedAt: new Date(r.startedAt).toISOString(),
    finishedAt: r.finishedAt === null ? null : new Date(r.finishedAt).toISOString(),
    error: r.error
  }
}

interface JobRow {
  id: string
  state: BackfillState
  params: unknown
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
}

/** A job row of another process, as seen now (a running one's clock stops at its last update). */
const fromRow = (r: JobRow, allSources: ReadonlyArray<string>): BackfillJob => {
  const params = (typeof r.params === "string" ? JSON.parse(r.params) : r.params) as
    | { entity_types?: ReadonlyArray<string> }
    | null
  return assembleJob({
    id: r.id,
    state: r.state,
    phase: r.state === "running" ? "embedding" : "done",
    bulkTypes: [],
    entityTypes: params?.entity_types ?? allSources,
    total: Number(r.total),
    processed: Number(r.processed),
    succeeded: Number(r.succeeded),
    failed: Number(r.failed),
    skipped: Number(r.skipped),
    error: r.error,
    startedAt: new Date(r.started_at ?? r.created_at).getTime(),
    finishedAt: r.finished_at ? new Date(r.finished_at).getTime() : null
  }, new Date(r.updated_at).getTime())
}

const newId = () => `bf_${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`

/**
 * Backfill jobs: the ones this process runs, live in memory, and every job's row in autoembed's
 * jobs table, so progress is visible from any process (API, CLI, another replica).
 */
export class BackfillJobs extends Effect.Service<BackfillJobs>()("@autoembed/core/BackfillJobs", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const config = yield* AutoEmbedConfig
    const sources = yield* Sources
    const st = stateTables(sql, config.stateSchema)
    const live = new Map<string, { readonly record: Ref.Ref<JobRecord>; readonly params: unknown }>()

    /** Writes a live job's row (best effort: progress in memory goes on if the database is away). */
    const save = (id: string) =>
      Effect.gen(function*() {
        const entry = live.get(id)
        if (entry === undefined) return
        const job = assembleJob(yield* Ref.get(entry.record), Date.now())
        yield* sql`
          INSERT INTO ${st.jobs} (id, state, params, total, processed, succeeded, failed, skipped, error,
            started_at, updated_at, finished_at)
          VALUES (${job.id}, ${job.state}, ${
          JSON.stringify(entry.params)
        }::jsonb, ${job.total}, ${job.processed}, ${job.succeeded}, ${job.failed}, ${job.skipped},
                  ${job.error}, ${job.startedAt}::timestamptz, now(), ${job.finishedAt}::timestamptz)
          ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, total = EXCLUDED.total, processed = EXCLUDED.processed,
            succeeded = EXCLUDED.succeeded, failed = EXCLUDED.failed, skipped = EXCLUDED.skipped,
            error = EXCLUDED.error,
            updated_at = now(), finished_at = EXCLUDED.finished_at`
      }).pipe(Effect.ignore)

    /** A new running job of this process over `entityTypes`; `params` is stored with its row. */
    const create = (entityTypes: ReadonlyArray<string>, params: unknown) =>
      Effect.gen(function*() {
        const record: JobRecord = {
          id: newId(),
          state: "running",
          phase: "queueing",
          bulkTypes: [],
          entityTypes: entityTypes,
          total: 0,
          processed: 0,
          succeeded: 0,
          failed: 0,
          skipped: 0,
          error: null,
          startedAt: Date.now(),
          finishedAt: null
        }
        live.set(record.id, { record: yield* Ref.make(record), params })
        yield* save(record.id)
        return assembleJob(record, Date.now())
      })

    /** Changes a live job in memory (a finished one gets its finish time); `save` writes it. */
    const update = (id: string, f: (record: JobRecord) => JobRecord) =>
      Effect.gen(function*() {
        const entry = live.get(id)
        if (entry === undefined) return yield* Effect.dieMessage(`No live backfill job ${id}`)
        const record = yield* Ref.updateAndGet(entry.record, (r) => {
          const next = f(r)
          return next.state !== "running" && next.finishedAt === null ? { ...next, finishedAt: Date.now() } : next
        })
        return assembleJob(record, Date.now())
      })

    /** A job by id: from this process, or from the database when another process ran it. */
    const get = (id: string) =>
      Effect.gen(function*() {
        const entry = live.get(id)
        if (entry !== undefined) return Option.some(assembleJob(yield* Ref.get(entry.record), Date.now()))
        const rows = yield* sql<JobRow>`SELECT * FROM ${st.jobs} WHERE id = ${id}`
        return rows.length === 0 ? Option.none() : Option.some(fromRow(rows[0], sources.names))
      })

    /** The latest jobs of every process, newest first. */
    const list = (limit = 20) =>
      Effect.gen(function*() {
        const rows = yield* sql<JobRow>`SELECT * FROM ${st.jobs} ORDER BY created_at DESC, id DESC LIMIT ${limit}`
        return yield* Effect.forEach(rows, (r) => {
          const entry = live.get(r.id)
          return entry === undefined
            ? Effect.succeed(fromRow(r, sources.names))
            : Effect.map(Ref.get(entry.record), (record) => assembleJob(record, Date.now()))
        })
      })

    return { create, update, save, get, list } as const
  })
}) {}
