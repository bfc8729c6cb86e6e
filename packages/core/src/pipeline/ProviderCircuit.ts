import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Ref } from "effect"
import { AutoEmbedConfig } from "../config/AutoEmbedConfig.js"
import { stateTables } from "../storage/State.js"

/** How stale this process's copy of the circuits may be: one small read a second at most. */
const REFRESH_MS = 1_000

/** An open circuit: nobody calls the model until `probeAt`, then one worker probes it. */
export interface OpenCircuit {
  readonly model: string
  readonly openedAt: string
  readonly probeAt: string
  readonly lastError: string
}

/** What a worker may do with a model now. */
export type CircuitGate =
  | { readonly _tag: "Closed" }
  | { readonly _tag: "Open"; readonly retryInMs: number }
  /** This worker won the probe: one small call decides whether the circuit closes. */
  | { readonly _tag: "Probe" }

type Row = { model: string; opened_at: Date | string; probe_at: Date | string; last_error: string }

/**
 * The provider circuit breaker, shared by every worker on the database. An error that affects every
 * request (a bad key, an unknown model) opens the model's circuit for `AUTOEMBED_BREAKER_MS`: every
 * worker gives its rows back without spending an attempt and stops calling; when the period is
 * over, exactly one worker (the one whose UPDATE moves `probe_at`) sends a one-text probe, which
 * closes the circuit or keeps it open for another period. Workers read the table at most once a
 * second, so the fleet learns of an open circuit within a second of the first failure.
 */
export class ProviderCircuit extends Effect.Service<ProviderCircuit>()("@autoembed/core/ProviderCircuit", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const config = yield* AutoEmbedConfig
    const t = stateTables(sql, config.stateSchema)
    const cache = yield* Ref.make<{ at: number; open: ReadonlyMap<string, OpenCircuit> }>({ at: 0, open: new Map() })

    const read = Effect.map(
      sql<Row>`SELECT model, opened_at, probe_at, last_error FROM ${t.circuits} WHERE open ORDER BY model`,
      (rows) =>
        rows.map((r): OpenCircuit => ({
          model: r.model,
          openedAt: new Date(r.opened_at).toISOString(),
          probeAt: new Date(r.probe_at).toISOString(),
          lastError: r.last_error
        }))
    )

    const current = Effect.gen(function*() {
      const cached = yield* Ref.get(cache)
      if (Date.now() - cached.at < REFRESH_MS) return cached.open
      const open = new Map((yield* read).map((c) => [c.model, c]))
      yield* Ref.set(cache, { at: Date.now(), open })
      return open as ReadonlyMap<string, OpenCircuit>
    })

    const forget = Ref.update(cache, (c) => ({ ...c, at: 0 }))

    /** Opens (or keeps open) a model's circuit for one more period. */
    const trip = (model: string, error: string) =>
      Effect.zipRight(
        sql`
          INSERT INTO ${t.circuits} (model, open, opened_at, probe_at, last_error)
          VALUES (${model}, true, now(), now() + make_interval(secs => ${config.breakerMs / 1000}), ${error})
          ON CONFLICT (model) DO UPDATE SET open = true, last_error = EXCLUDED.last_error, updated_at = now(),
            probe_at = EXCLUDED.probe_at,
            opened_at = CASE WHEN ${t.circuits}.open THEN ${t.circuits}.opened_at ELSE now() END`,
        forget
      )

    /** Closes a model's circuit after a call succeeded. */
    const close = (model: string) =>
      Effect.zipRight(
        sql`UPDATE ${t.circuits} SET open = false, updated_at = now() WHERE model = ${model} AND open`,
        forget
      )

    const gate = (model: string) =>
      Effect.gen(function*() {
        const open = (yield* current).get(model)
        if (open === undefined) return { _tag: "Closed" } as CircuitGate
        const wait = new Date(open.probeAt).getTime() - Date.now()
        if (wait > 0) return { _tag: "Open", retryInMs: wait } as CircuitGate
        // The first worker to move probe_at probes; the others wait another period.
        const won = yield* sql`
          UPDATE ${t.circuits} SET probe_at = now() + make_interval(secs => ${config.breakerMs / 1000})
          WHERE model = ${model} AND open AND probe_at <= now() RETURNING model`
        yield* forget
        return (won.length > 0 ? { _tag: "Probe" } : { _tag: "Open", retryInMs: config.breakerMs }) as CircuitGate
      })

    return {
      gate,
      trip,
      close,
      /** The open circuits, for status (read now, not from the cache). */
      open: read
    } as const
  })
}) {}
