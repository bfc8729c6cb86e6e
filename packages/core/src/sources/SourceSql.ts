import type * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import type { Source } from "./SourceCatalog.js"

/**
 * SQL pieces of a source, with every identifier quoted by the SQL client. The text expression names
 * the user's columns unqualified, so it is only used where the user's table is the one relation in
 * scope besides autoembed's own `ae_`-prefixed names.
 */
export const sourceSql = (sql: SqlClient.SqlClient) => {
  const table = (s: Source) => sql(`${s.schema}.${s.tableName}`)
  const id = (s: Source) => sql(s.idColumn)
  const text = (s: Source): Fragment =>
    s.text.kind === "sql"
      ? sql`(${sql.literal(s.text.expression)})`
      // concat renders NULL as empty; its literal pieces are parameters, typed so "any" accepts them.
      : sql`concat(${
        sql.csv(s.text.parts.map((p) => ("column" in p ? sql`${sql(p.column)}` : sql`${p.literal}::text`)))
      })`
  const hash = (s: Source) => sql`md5(coalesce(${text(s)}, ''))`
  const tsvector = (s: Source, value: Fragment) => sql`to_tsvector(${s.language}::regconfig, coalesce(${value}, ''))`
  /** Ids given as text, cast to the key's own type so the primary key serves the lookup. */
  const idArray = (s: Source, ids: ReadonlyArray<string>) => sql`${ids}::text[]::${sql.literal(s.idType)}[]`
  const idType = (s: Source) => sql.literal(s.idType)
  return { table, id, text, hash, tsvector, idArray, idType }
}

export type SourceSql = ReturnType<typeof sourceSql>
