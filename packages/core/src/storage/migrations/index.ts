import type * as SqlClient from "@effect/sql/SqlClient"
import type { Effect } from "effect"
import state from "./0001_state.js"
import bm25 from "./0002_bm25.js"
import sets from "./0003_sets.js"
import ledger from "./0004_ledger.js"
import fleet from "./0005_fleet.js"

/** Ordered migrations of autoembed's schema, keyed `<id>_<name>` as @effect/sql's Migrator expects. */
export const migrations = (schema: string): Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>> => ({
  "0001_state": state(schema),
  "0002_bm25": bm25(schema),
  "0003_sets": sets(schema),
  "0004_ledger": ledger(schema),
  "0005_fleet": fleet(schema)
})
