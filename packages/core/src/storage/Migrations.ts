import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"
import { AutoEmbedConfig } from "../config/AutoEmbedConfig.js"
import { builtinSources } from "../knowledge/Builtin.js"
import { stateTables } from "./State.js"

/**
 * For a change of EMBEDDING_DIMENSIONS: drops the vectors autoembed keeps in its own schema and
 * re-creates the built-in tables' vector columns empty, so every row is missing and the workers
 * (or a backfill) embed them again at the new size. A vector column of the user's own table is
 * never altered: it is reported, and its owner changes its type. Returns what was reset and skipped.
 */
export const resetEmbeddings = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const config = yield* AutoEmbedConfig
  const schema = config.stateSchema
  const [found] = yield* sql<{ r: string | null }>`SELECT to_regclass(${`${schema}.sources`})::text AS r`
  if (found?.r == null) return { reset: [] as Array<string>, skipped: [] as Array<string> }
  const t = stateTables(sql, schema)
  const registered = yield* sql<{
    name: string
    table_schema: string
    table_name: string
    storage: string
    vector_column: string | null
    index_schema: string
    index_name: string
    index_owned: boolean
  }>`SELECT name, table_schema, table_name, storage, vector_column, index_schema, index_name, index_owned
    FROM ${t.registry}`
  const reset: Array<string> = []
  const skipped: Array<string> = []
  yield* sql.withTransaction(
    Effect.forEach(registered, (r) =>
      Effect.gen(function*() {
        if (r.storage === "internal") {
          yield* sql`DROP TABLE IF EXISTS ${t.vectors(r.name)}`
        } else if (config.builtin && r.name in builtinSources && r.vector_column !== null) {
          if (r.index_owned) yield* sql`DROP INDEX IF EXISTS ${sql(`${r.index_schema}.${r.index_name}`)}`
          const table = sql(`${r.table_schema}.${r.table_name}`)
          yield* sql`ALTER TABLE ${table} DROP COLUMN IF EXISTS ${sql(r.vector_column)}`
          yield* sql`ALTER TABLE ${table} ADD COLUMN ${sql(r.vector_column)} ${
            sql.literal(`vector(${Math.trunc(config.dimensions)})`)
          }`
        } else {
          skipped.push(
            `${r.name}: ${r.table_schema}.${r.table_name}.${r.vector_column} is your column; ` +
              `change its type to vector(${config.dimensions}) yourself`
          )
          return
        }
        yield* sql`DELETE FROM ${t.rows} WHERE source = ${r.name}`
        yield* sql`DELETE FROM ${t.indexState} WHERE source = ${r.name}`
        reset.push(r.name)
      }), { discard: true })
  )
  return { reset, skipped }
}).pipe(Effect.withSpan("Migrations.resetEmbeddings"))
