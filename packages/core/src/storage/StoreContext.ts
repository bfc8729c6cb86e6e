import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { Fragment } from "@effect/sql/Statement"
import { Duration, Effect } from "effect"
import { AutoEmbedConfig } from "../config/AutoEmbedConfig.js"
import { SetRegistry } from "../sets/SetRegistry.js"
import { type Source, Sources } from "../sources/Sources.js"
import { sourceSql } from "../sources/SourceSql.js"
import { ActiveModel } from "./ActiveModel.js"
import { Database } from "./Database.js"
import { nameFailure, resilient } from "./SqlFailure.js"
import { stateTables } from "./State.js"

/**
 * What every part of the `EmbeddingStore` shares: the SQL client, the sources and their embedding
 * sets, the model key each set writes and compares, autoembed's tables and the statement wrappers.
 */
export const makeStoreContext = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const sources = yield* Sources
  const config = yield* AutoEmbedConfig
  const database = yield* Database
  const model = (yield* ActiveModel).key
  const registry = yield* SetRegistry
  const leaseSeconds = config.leaseSeconds
  const st = stateTables(sql, config.stateSchema)
  const sourceSqlOf = sourceSql(sql)
  const { id } = sourceSqlOf
  /** The row `t` has a vector: in its own column, or in autoembed's table of the source's vectors. */
  const hasVector = (s: Source): Fragment =>
    s.storage.kind === "column"
      ? sql`t.${sql(s.storage.column)} IS NOT NULL`
      : sql`EXISTS (SELECT 1 FROM ${st.vectors(s.name)} ae_v WHERE ae_v.id = t.${id(s)})`
  return {
    sql,
    sources,
    database,
    model,
    /** The model key a source object's set records and compares: its own, or the process's. */
    modelOf: (s: Source): string => s.set?.modelKey ?? model,
    /** Every set's source object: the configured ones, then the sets added beside them. */
    targets: registry.targets,
    leaseSeconds,
    st,
    ...sourceSqlOf,
    hasVector,
    // A worker's statement waits out an outage for half a lease: its rows stay held meanwhile, and
    // what it already did (vectors paid for) is not lost to the lease running out.
    retried: (name: string) => resilient(`EmbeddingStore.${name}`, Duration.seconds(leaseSeconds / 2)),
    // A claim is not retried (it may have committed before the connection dropped: see releaseUnheld).
    named: (name: string) => <A, R>(self: Effect.Effect<A, SqlError, R>) =>
      self.pipe(Effect.mapError(nameFailure(`EmbeddingStore.${name}`)), Effect.withSpan(`EmbeddingStore.${name}`))
  } as const
})

export type StoreContext = Effect.Effect.Success<typeof makeStoreContext>

/** `count(*)` of a `SELECT count(*)::int AS n` statement. */
export const countOf = (rows: ReadonlyArray<{ n: number }>): number => rows[0]?.n ?? 0
