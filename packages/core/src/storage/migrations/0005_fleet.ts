import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"
import { stateTables } from "../State.js"

/**
 * The fleet, seen from the database: every worker process writes a heartbeat row (so any process,
 * an API without workers too, lists the live workers), and each written row records when its
 * change was queued (`changed_at`), so freshness (change to vector) and throughput are read from
 * the bookkeeping rather than from the process that answers. `rows_embedded_at_idx` keeps those
 * reads to the last minutes' rows. `circuits` holds the provider circuit breaker every worker obeys:
 * one worker seeing a bad key or an unknown model stops the whole fleet from calling that model.
 */
export default (schema: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = stateTables(sql, schema)
    yield* sql`
      CREATE TABLE IF NOT EXISTS ${t.workers} (
        worker_id text PRIMARY KEY,
        host text NOT NULL,
        pid integer NOT NULL,
        started_at timestamptz NOT NULL DEFAULT now(),
        heartbeat_at timestamptz NOT NULL DEFAULT now(),
        sets text[] NOT NULL DEFAULT '{}',
        in_flight integer NOT NULL DEFAULT 0,
        queue_depth integer NOT NULL DEFAULT 0,
        embedded bigint NOT NULL DEFAULT 0,
        last_batch_at timestamptz,
        paused_for_ms integer NOT NULL DEFAULT 0,
        last_error text
      )`
    yield* sql`
      CREATE TABLE IF NOT EXISTS ${t.circuits} (
        model text PRIMARY KEY,
        open boolean NOT NULL DEFAULT true,
        opened_at timestamptz NOT NULL DEFAULT now(),
        probe_at timestamptz NOT NULL,
        last_error text NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
      )`
    yield* sql`ALTER TABLE ${t.rows} ADD COLUMN IF NOT EXISTS changed_at timestamptz`
    yield* sql`CREATE INDEX IF NOT EXISTS rows_embedded_at_idx ON ${t.rows} (embedded_at)`
  })
