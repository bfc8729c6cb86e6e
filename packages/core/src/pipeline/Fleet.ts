import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"
import * as Os from "node:os"
import { AutoEmbedConfig } from "../config/AutoEmbedConfig.js"
import { stateTables } from "../storage/State.js"

/** How often a worker process writes its heartbeat. */
export const HEARTBEAT_MS = 5_000
/** A worker is live while its last heartbeat is younger than three intervals (one lost write is no death). */
const LIVE_WITHIN_SECONDS = (3 * HEARTBEAT_MS) / 1000
/** Throughput slots, as the process's own series has them: 30 of 10 s. */
const SLOT_SECONDS = 10
const SLOTS = 30

/** What a worker process says about itself in its heartbeat. */
export interface Heartbeat {
  readonly workerId: string
  /** The set keys it embeds. */
  readonly sets: ReadonlyArray<string>
  readonly inFlight: number
  readonly queueDepth: number
  /** Rows it has embedded since it started. */
  readonly embedded: number
  readonly lastBatchAt: Date | null
  readonly pausedForMs: number
  readonly lastError: string | null
}

export interface FleetWorker {
  readonly workerId: string
  readonly host: string
  readonly pid: number
  readonly startedAt: string
  readonly heartbeatAt: string
  readonly sets: ReadonlyArray<string>
  readonly inFlight: number
  readonly queueDepth: number
  readonly embedded: number
  readonly lastBatchAt: string | null
  readonly pausedForMs: number
  readonly lastError: string | null
}

/** Seconds from a row's change (its queueing) to its vector, over the rows written in the last 5 minutes. */
export interface Freshness {
  readonly p50Seconds: number | null
  readonly p95Seconds: number | null
  readonly samples: number
}

export interface FleetThroughput {
  readonly lastMinutePerSecond: number
  readonly last5MinutesPerSecond: number
  readonly series: ReadonlyArray<{ readonly at: string; readonly embedded: number }>
}

type WorkerRow = {
  worker_id: string
  host: string
  pid: number
  started_at: Date | string
  heartbeat_at: Date | string
  sets: ReadonlyArray<string>
  in_flight: number
  queue_depth: number
  embedded: number | string
  last_batch_at: Date | string | null
  paused_for_ms: number
  last_error: string | null
}

const iso = (d: Date | string) => new Date(d).toISOString()
const round2 = (n: number) => Math.round(n * 100) / 100

/**
 * The whole fleet as the database sees it, so that any process (an API without workers too)
 * reports every worker: heartbeats written by the worker processes, throughput and freshness read
 * from the rows' bookkeeping (`embedded_at`, and `changed_at`, when the change was queued).
 */
export class Fleet extends Effect.Service<Fleet>()("@autoembed/core/Fleet", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const config = yield* AutoEmbedConfig
    const t = stateTables(sql, config.stateSchema)

    /** Writes a worker's heartbeat; also forgets workers silent for an hour (killed without a goodbye). */
    const beat = (h: Heartbeat) =>
      Effect.gen(function*() {
        yield* sql`
          INSERT INTO ${t.workers} AS w (worker_id, host, pid, sets, in_flight, queue_depth, embedded, last_batch_at,
            paused_for_ms, last_error)
          VALUES (${h.workerId}, ${Os.hostname()}, ${process.pid}, ${[...h.sets]}::text[], ${h.inFlight},
            ${h.queueDepth}, ${h.embedded}, ${h.lastBatchAt}, ${Math.round(h.pausedForMs)}, ${h.lastError})
          ON CONFLICT (worker_id) DO UPDATE SET heartbeat_at = now(), sets = EXCLUDED.sets,
            in_flight = EXCLUDED.in_flight, queue_depth = EXCLUDED.queue_depth, embedded = EXCLUDED.embedded,
            last_batch_at = EXCLUDED.last_batch_at, paused_for_ms = EXCLUDED.paused_for_ms,
            last_error = EXCLUDED.last_error`
        yield* sql`DELETE FROM ${t.workers} WHERE heartbeat_at < now() - interval '1 hour'`
      })

    /** A worker that stops gracefully leaves at once instead of fading out. */
    const leave = (workerId: string) => Effect.asVoid(sql`DELETE FROM ${t.workers} WHERE worker_id = ${workerId}`)

    const workers = Effect.map(
      sql<WorkerRow>`
        SELECT * FROM ${t.workers}
        WHERE heartbeat_at > now() - make_interval(secs => ${LIVE_WITHIN_SECONDS}) ORDER BY started_at, worker_id`,
      (rows) =>
        rows.map((r): FleetWorker => ({
          workerId: r.worker_id,
          host: r.host,
          pid: Number(r.pid),
          startedAt: iso(r.started_at),
          heartbeatAt: iso(r.heartbeat_at),
          sets: r.sets,
          inFlight: Number(r.in_flight),
          queueDepth: Number(r.queue_depth),
          embedded: Number(r.embedded),
          lastBatchAt: r.last_batch_at === null ? null : iso(r.last_batch_at),
          pausedForMs: Number(r.paused_for_ms),
          lastError: r.last_error
        }))
    )

    /** Rows embedded per 10-second slot over the last 5 minutes, by every worker (adopted vectors excluded). */
    const throughput = Effect.gen(function*() {
      const rows = yield* sql<{ slot: number | string; n: number }>`
        SELECT floor(extract(epoch FROM embedded_at) / ${SLOT_SECONDS})::int8 AS slot, count(*)::int AS n
        FROM ${t.rows}
        WHERE embedded_at > now() - make_interval(secs => ${SLOT_SECONDS * SLOTS}) AND changed_at IS NOT NULL
        GROUP BY 1`
      const bySlot = new Map(rows.map((r) => [Number(r.slot), Number(r.n)]))
      const now = Math.floor(Date.now() / 1000 / SLOT_SECONDS)
      const series = Array.from({ length: SLOTS }, (_, i) => {
        const slot = now - SLOTS + 1 + i
        return { at: new Date(slot * SLOT_SECONDS * 1000).toISOString(), embedded: bySlot.get(slot) ?? 0 }
      })
      const sum = (n: number) => series.slice(-n).reduce((a, s) => a + s.embedded, 0)
      const result: FleetThroughput = {
        lastMinutePerSecond: round2(sum(6) / 60),
        last5MinutesPerSecond: round2(sum(SLOTS) / (SLOTS * SLOT_SECONDS)),
        series
      }
      return result
    })

    /** Freshness per set key over the last 5 minutes' writes. */
    const freshness = Effect.map(
      sql<{ source: string; p50: number | null; p95: number | null; n: number }>`
        SELECT source,
          percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM embedded_at - changed_at))::float8 AS p50,
          percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM embedded_at - changed_at))::float8 AS p95,
          count(*)::int AS n
        FROM ${t.rows}
        WHERE embedded_at > now() - interval '5 minutes' AND changed_at IS NOT NULL
        GROUP BY source`,
      (rows) =>
        Object.fromEntries(rows.map((r) => [
          r.source,
          {
            p50Seconds: r.p50 === null ? null : round2(Math.max(0, Number(r.p50))),
            p95Seconds: r.p95 === null ? null : round2(Math.max(0, Number(r.p95))),
            samples: Number(r.n)
          } satisfies Freshness
        ])) as Record<string, Freshness>
    )

    return { beat, leave, workers, throughput, freshness } as const
  })
}) {}
