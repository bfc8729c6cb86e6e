import type * as SqlClient from "@effect/sql/SqlClient"
import type { Effect } from "effect"
import state from "./0001_state.js"

/** Ordered migrations of autoembed's schema, keyed `<id>_<name>` as @effect/sql's Migrator expects. */
export const migrations = (schema: string): Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>> => ({
  "0001_state": state(schema)
})
