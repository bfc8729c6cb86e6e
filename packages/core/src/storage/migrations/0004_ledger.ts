import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"
import { stateTables } from "../State.js"

/**
 * The token ledger: input tokens sent to the providers, one row per clock hour (UTC), source,
 * embedding set, model and kind (document embeddings of rows, query embeddings of searches).
 * Workers add to it with one upsert per provider call, so the table grows with hours × sets, not
 * with rows. `tokens` is what the provider reported where it reported usage, else autoembed's count
 * (`estimated_tokens` is that counted part); `counted_tokens` is autoembed's count of every input,
 * kept beside the reported figure so dry runs can be calibrated against what providers really bill.
 */
export default (schema: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = stateTables(sql, schema)
    yield* sql`
      CREATE TABLE IF NOT EXISTS ${t.ledger} (
        hour timestamptz NOT NULL,
        source text NOT NULL,
        set_key text NOT NULL,
        model text NOT NULL,
        kind text NOT NULL CHECK (kind IN ('document', 'query')),
        tokens bigint NOT NULL DEFAULT 0,
        estimated_tokens bigint NOT NULL DEFAULT 0,
        counted_tokens bigint NOT NULL DEFAULT 0,
        inputs bigint NOT NULL DEFAULT 0,
        requests bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (hour, source, set_key, model, kind)
      )`
  })
