import type * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"
import { modelKeyOf, type ProviderKind } from "../providers/ProviderSpec.js"
import type { Source } from "../sources/SourceCatalog.js"
import { stateTables, vectorTableName } from "../storage/State.js"

/** One embedding set as autoembed's `sets` table records it. */
export interface SetRow {
  readonly source: string
  readonly name: string
  /** What the queue, the bookkeeping and the vector table know the set by. */
  readonly key: string
  readonly provider: ProviderKind
  readonly model: string
  readonly dimensions: number
  readonly baseUrl: string | null
  /** A vector(n) column of the user's table that holds the set's vectors; null: autoembed's table. */
  readonly vectorColumn: string | null
  /** The set the configuration declares (embedded by the process's own provider). */
  readonly configured: boolean
  readonly active: boolean
  /** The set `sets rollback` re-activates. */
  readonly previous: boolean
  readonly createdAt: Date
  readonly activatedAt: Date | null
}

export type Row = {
  source: string
  name: string
  key: string
  provider: string
  model: string
  dimensions: number
  base_url: string | null
  vector_column: string | null
  configured: boolean
  active: boolean
  previous: boolean
  created_at: Date | string
  activated_at: Date | string | null
}

export const toSetRow = (r: Row): SetRow => ({
  source: r.source,
  name: r.name,
  key: r.key,
  provider: r.provider as ProviderKind,
  model: r.model,
  dimensions: Number(r.dimensions),
  baseUrl: r.base_url,
  vectorColumn: r.vector_column,
  configured: r.configured,
  active: r.active,
  previous: r.previous,
  createdAt: new Date(r.created_at),
  activatedAt: r.activated_at === null ? null : new Date(r.activated_at)
})

/** `messages@mxbai-embed-large`; with the dimensions appended when another set has that name. */
export const defaultSetName = (source: string, model: string, dimensions: number, taken: ReadonlyArray<string>) => {
  const plain = `${source}@${model.replace(/^.*\//, "")}`
  if (!taken.includes(plain)) return plain
  const sized = `${plain}:${dimensions}`
  if (!taken.includes(sized)) return sized
  for (let n = 2;; n++) if (!taken.includes(`${sized}-${n}`)) return `${sized}-${n}`
}

/**
 * The source object the store works on for a set other than the configured one: the same table,
 * id and text, with the set's key as its name and the set's own storage, dimensions and index.
 */
export const setSource = (base: Source, row: SetRow, stateSchema: string): Source => {
  const internal = row.vectorColumn === null
  const table = vectorTableName(row.key)
  return {
    ...base,
    name: row.key,
    storage: internal ? { kind: "internal", table } : { kind: "column", column: row.vectorColumn! },
    dimensions: row.dimensions,
    index: internal
      ? {
        schema: stateSchema,
        table,
        column: "embedding",
        name: `${table}_hnsw`,
        owned: true,
        create: true,
        operator: "<=>",
        halfvec: false
      }
      : {
        schema: base.schema,
        table: base.tableName,
        column: row.vectorColumn!,
        name: `autoembed_${row.key}_hnsw`,
        owned: true,
        create: true,
        operator: "<=>",
        halfvec: false
      },
    set: {
      source: base.name,
      name: row.name,
      spec: {
        provider: row.provider,
        model: row.model,
        dimensions: row.dimensions,
        baseUrl: row.baseUrl ?? undefined
      },
      modelKey: modelKeyOf(row)
    }
  }
}

/** Every recorded set, oldest first within each source. */
export const readSetRows = (sql: SqlClient.SqlClient, stateSchema: string) =>
  Effect.map(
    sql<Row>`SELECT * FROM ${stateTables(sql, stateSchema).sets} ORDER BY source, created_at, name`,
    (rows) => rows.map(toSetRow)
  )
