import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"
import { stateTables } from "../State.js"

/**
 * Embedding sets: a source may be embedded by several models side by side, each set with its own
 * provider, model, dimensions and storage. `key` is what the queue, the bookkeeping and the vector
 * table know the set by: the source's own name for the set the configuration declares (so a 0.1
 * database needs no data migration), `<source>@<n>` for the others. Exactly one set per source is
 * active (the partial unique index makes a second one impossible); `previous` marks the set
 * `sets rollback` goes back to.
 */
export default (schema: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = stateTables(sql, schema)
    yield* sql`
      CREATE TABLE IF NOT EXISTS ${t.sets} (
        source text NOT NULL,
        name text NOT NULL,
        key text NOT NULL UNIQUE,
        provider text NOT NULL,
        model text NOT NULL,
        dimensions integer NOT NULL,
        base_url text,
        vector_column text,
        configured boolean NOT NULL DEFAULT false,
        active boolean NOT NULL DEFAULT false,
        previous boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now(),
        activated_at timestamptz,
        PRIMARY KEY (source, name)
      )`
    yield* sql`CREATE UNIQUE INDEX IF NOT EXISTS sets_active_idx ON ${t.sets} (source) WHERE active`
  })
