import type * as SqlClient from "@effect/sql/SqlClient"
import type { Effect } from "effect"
import schema from "./0001_schema.js"
import indexState from "./0002_index_state.js"

/** Ordered migrations, keyed `<id>_<name>` as @effect/sql's Migrator expects. */
export const migrations: Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>> = {
  "0001_schema": schema,
  "0002_index_state": indexState
}
