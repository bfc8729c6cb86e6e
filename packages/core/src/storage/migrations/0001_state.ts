import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"
import { stateTables } from "../State.js"

/**
 * autoembed's own state, all inside its schema: the durable queue, per-row bookkeeping, backfill
 * jobs, bulk-load marks, the registry of installed sources, and the trigger function. The user's
 * tables get nothing but triggers (and, where autoembed owns one, an HNSW index).
 */
export default (schema: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = stateTables(sql, schema)
    // One row per source row that needs an embedding, written by triggers in the same transaction as
    // the change, so pending work is as durable as the data. `version` is bumped by every change: a
    // worker only removes the row it embedded, never a newer request.
    yield* sql`
      CREATE TABLE IF NOT EXISTS ${t.queue} (
        source text NOT NULL,
        row_id text NOT NULL,
        version bigint NOT NULL DEFAULT 1,
        enqueued_at timestamptz NOT NULL DEFAULT now(),
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        attempts integer NOT NULL DEFAULT 0,
        locked_until timestamptz,
        locked_by text,
        claim_token text,
        last_error text,
        last_attempt_at timestamptz,
        failed_at timestamptz,
        PRIMARY KEY (source, row_id)
      )`
    yield* sql`CREATE INDEX IF NOT EXISTS queue_ready_idx ON ${t.queue} (next_attempt_at) WHERE failed_at IS NULL`
    yield* sql`CREATE INDEX IF NOT EXISTS queue_failed_idx ON ${t.queue} (source) WHERE failed_at IS NOT NULL`
    yield* sql`CREATE INDEX IF NOT EXISTS queue_errors_idx ON ${t.queue} (last_attempt_at) WHERE last_error IS NOT NULL`

    // What each embedded row was embedded from: the model, the md5 of its text (the write guard), and
    // its text as a tsvector for the full-text leg of search, so the user's table needs no column.
    yield* sql`
      CREATE TABLE IF NOT EXISTS ${t.rows} (
        source text NOT NULL,
        row_id text NOT NULL,
        model text NOT NULL,
        hash text NOT NULL,
        tsv tsvector,
        embedded_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (source, row_id)
      )`
    yield* sql`CREATE INDEX IF NOT EXISTS rows_model_idx ON ${t.rows} (source, model)`
    yield* sql`CREATE INDEX IF NOT EXISTS rows_tsv_idx ON ${t.rows} USING gin (tsv)`

    // Backfill jobs, so progress is visible from any process (API, CLI, another replica).
    yield* sql`
      CREATE TABLE IF NOT EXISTS ${t.jobs} (
        id text PRIMARY KEY,
        state text NOT NULL,
        params jsonb NOT NULL,
        total bigint NOT NULL DEFAULT 0,
        processed bigint NOT NULL DEFAULT 0,
        succeeded bigint NOT NULL DEFAULT 0,
        failed bigint NOT NULL DEFAULT 0,
        skipped bigint NOT NULL DEFAULT 0,
        error text,
        created_at timestamptz NOT NULL DEFAULT now(),
        started_at timestamptz,
        updated_at timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz
      )`

    // A source whose HNSW index was dropped for a bulk load. While the mark is there, start-up does
    // not rebuild the index (that is the bulk run's last step); a run that died half-way leaves the
    // mark, and the next backfill or \`pnpm cli reindex\` finishes the job.
    yield* sql`
      CREATE TABLE IF NOT EXISTS ${t.indexState} (
        source text PRIMARY KEY,
        state text NOT NULL,
        started_at timestamptz NOT NULL DEFAULT now(),
        note text
      )`

    // What was installed per source: uninstall removes exactly this, and nothing of the user's.
    yield* sql`
      CREATE TABLE IF NOT EXISTS ${t.registry} (
        name text PRIMARY KEY,
        table_schema text NOT NULL,
        table_name text NOT NULL,
        id_column text NOT NULL,
        storage text NOT NULL,
        vector_column text,
        dimensions integer NOT NULL,
        index_schema text NOT NULL,
        index_name text NOT NULL,
        index_owned boolean NOT NULL,
        installed_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`

    // Enqueue on insert and update, forget on delete, wake workers in other processes.
    // TG_ARGV: source name, id column, and for sources stored here their vector table's name.
    // to_jsonb reads the id generically for any table; ($1).col keeps the id's own type.
    yield* sql`
      CREATE OR REPLACE FUNCTION ${t.enqueue}() RETURNS trigger LANGUAGE plpgsql AS $fn$
      DECLARE
        rid text;
      BEGIN
        IF TG_OP = 'DELETE' THEN
          rid := to_jsonb(OLD) ->> TG_ARGV[1];
          DELETE FROM ${t.queue} WHERE source = TG_ARGV[0] AND row_id = rid;
          DELETE FROM ${t.rows} WHERE source = TG_ARGV[0] AND row_id = rid;
          IF TG_NARGS > 2 THEN
            EXECUTE format('DELETE FROM %I.%I WHERE id = ($1).%I', ${
      sql.literal(`'${schema}'`)
    }, TG_ARGV[2], TG_ARGV[1]) USING OLD;
          END IF;
          RETURN OLD;
        END IF;
        INSERT INTO ${t.queue} AS q (source, row_id) VALUES (TG_ARGV[0], to_jsonb(NEW) ->> TG_ARGV[1])
        ON CONFLICT (source, row_id) DO UPDATE SET
          version = q.version + 1, enqueued_at = now(), next_attempt_at = now(), attempts = 0,
          locked_until = NULL, locked_by = NULL, claim_token = NULL, last_error = NULL, failed_at = NULL;
        PERFORM pg_notify('autoembed_pending', TG_ARGV[0]);
        RETURN NEW;
      END
      $fn$`
  })
