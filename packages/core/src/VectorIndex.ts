import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"
import { AutoEmbedConfig, type IndexKind } from "./AutoEmbedConfig.js"
import { Database } from "./Database.js"
import { hnswIndexSql, quote, type Source, Sources } from "./Sources.js"

export interface IndexInfo {
  readonly source: string
  readonly name: string
  readonly exists: boolean
  readonly valid: boolean
  readonly kind: IndexKind | null
  readonly m: number | null
  readonly efConstruction: number | null
  readonly definition: string | null
  /** Set while a bulk load holds the index dropped (or after one died half-way). */
  readonly bulkMark: string | null
  /** The index exists, is valid and is built as configured. */
  readonly matchesConfig: boolean
}

/** pgvector's defaults, for an index created without a WITH clause. */
const DEFAULT_M = 16
const DEFAULT_EF_CONSTRUCTION = 64

export const parseIndexDefinition = (definition: string) => ({
  kind: (definition.includes("halfvec") ? "halfvec" : "vector") as IndexKind,
  m: Number(/\bm\s*=\s*'?(\d+)/.exec(definition)?.[1] ?? DEFAULT_M),
  efConstruction: Number(/ef_construction\s*=\s*'?(\d+)/.exec(definition)?.[1] ?? DEFAULT_EF_CONSTRUCTION)
})

/**
 * The HNSW indexes: their state, the bulk-load protocol (drop, load, build once), and `reindex`
 * to apply changed index settings. Building uses a generous maintenance_work_mem and a parallel
 * worker, and on a server it builds CONCURRENTLY so writes and searches go on meanwhile.
 */
export class VectorIndex extends Effect.Service<VectorIndex>()("@autoembed/core/VectorIndex", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const sources = yield* Sources
    const config = yield* AutoEmbedConfig
    const database = yield* Database
    const server = database.kind === "postgres"

    const info = (source: Source) =>
      Effect.gen(function*() {
        const rows = yield* sql<{ valid: boolean; definition: string }>`
          SELECT i.indisvalid AS valid, pg_get_indexdef(i.indexrelid) AS definition FROM pg_index i
          JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relname = ${source.indexName} AND n.nspname = ${source.schema}`
        const mark = yield* sql<{ state: string; started_at: Date }>`SELECT state, started_at FROM autoembed_index_state WHERE source = ${source.name}`
        const row = rows[0]
        const parsed = row ? parseIndexDefinition(row.definition) : null
        const result: IndexInfo = {
          source: source.name,
          name: source.indexName,
          exists: row !== undefined,
          valid: row?.valid ?? false,
          kind: parsed?.kind ?? null,
          m: parsed?.m ?? null,
          efConstruction: parsed?.efConstruction ?? null,
          definition: row?.definition ?? null,
          bulkMark: mark[0] ? `${mark[0].state} since ${new Date(mark[0].started_at).toISOString()}` : null,
          matchesConfig: row !== undefined && row.valid && parsed!.kind === config.indexKind && parsed!.m === config.hnswM &&
            parsed!.efConstruction === config.hnswEfConstruction
        }
        return result
      })

    const describe = Effect.fn("VectorIndex.describe")(function*() {
      return yield* Effect.forEach(sources.all, info)
    })

    /** Marks the source and drops its index, so a bulk load writes without per-row index maintenance. */
    const beginBulk = Effect.fn("VectorIndex.beginBulk")(function*(source: Source) {
      yield* sql`INSERT INTO autoembed_index_state (source, state, note) VALUES (${source.name}, 'bulk_loading', 'index dropped for a bulk load')
        ON CONFLICT (source) DO UPDATE SET state = 'bulk_loading', started_at = now()`
      yield* sql`DROP INDEX IF EXISTS ${sql(`${source.schema}.${source.indexName}`)}`
      yield* Effect.logInfo(`autoembed: ${source.name}: HNSW index dropped for a bulk load; search scans exactly until it is rebuilt`)
    })

    /**
     * Builds the configured index (replacing an invalid one), then clears the bulk mark. On a server
     * the build is CONCURRENT on a session with a large maintenance_work_mem; PGlite builds in place.
     */
    const build = Effect.fn("VectorIndex.build")(function*(source: Source, options: { readonly name?: string } = {}) {
      const name = options.name ?? source.indexName
      const current = yield* info(source)
      const statement = hnswIndexSql(source.schema, source.tableName, name, {
        kind: config.indexKind,
        dimensions: config.dimensions,
        m: config.hnswM,
        efConstruction: config.hnswEfConstruction
      }, server)
      const started = Date.now()
      if (server) {
        yield* Effect.scoped(
          Effect.gen(function*() {
            const conn = yield* sql.reserve
            if (name === source.indexName && current.exists && !current.valid) {
              yield* conn.executeRaw(`DROP INDEX CONCURRENTLY IF EXISTS ${quote(source.schema)}.${quote(name)}`, [])
            }
            yield* conn.executeRaw("SET maintenance_work_mem = '1GB'", [])
            yield* conn.executeRaw("SET max_parallel_maintenance_workers = 1", [])
            yield* conn.executeRaw(statement, [])
            yield* conn.executeRaw(`ANALYZE ${quote(source.schema)}.${quote(source.tableName)}`, [])
          })
        )
      } else {
        yield* sql.withTransaction(
          Effect.gen(function*() {
            if (name === source.indexName && current.exists && !current.valid) yield* sql`DROP INDEX IF EXISTS ${sql(`${source.schema}.${name}`)}`
            yield* sql`SELECT set_config('maintenance_work_mem', '256MB', true)`
            yield* sql.unsafe(statement)
          })
        )
      }
      if (name === source.indexName) yield* sql`DELETE FROM autoembed_index_state WHERE source = ${source.name}`
      yield* Effect.logInfo(`autoembed: ${source.name}: HNSW index built in ${((Date.now() - started) / 1000).toFixed(1)} s`)
    })

    /**
     * Applies the configured index settings: sources whose index is missing, invalid, marked by an
     * interrupted bulk load, or built with other settings get a new one (`force` rebuilds all).
     * On a server the new index is built beside the old one, which keeps serving until the swap.
     */
    const reindex = Effect.fn("VectorIndex.reindex")(function*(options: { readonly force?: boolean; readonly sources?: ReadonlyArray<string> } = {}) {
      const rebuilt: Array<string> = []
      for (const source of sources.all) {
        if (options.sources && !options.sources.includes(source.name)) continue
        const current = yield* info(source)
        if (current.matchesConfig && current.bulkMark === null && !options.force) continue
        if (server && current.exists && current.valid) {
          const temporary = `${source.indexName}_new`
          yield* sql`DROP INDEX IF EXISTS ${sql(`${source.schema}.${temporary}`)}`
          yield* build(source, { name: temporary })
          yield* sql.withTransaction(
            Effect.gen(function*() {
              yield* sql`DROP INDEX IF EXISTS ${sql(`${source.schema}.${source.indexName}`)}`
              yield* sql`ALTER INDEX ${sql(`${source.schema}.${temporary}`)} RENAME TO ${sql(source.indexName)}`
            })
          )
          yield* sql`DELETE FROM autoembed_index_state WHERE source = ${source.name}`
        } else {
          if (current.exists) yield* sql`DROP INDEX IF EXISTS ${sql(`${source.schema}.${source.indexName}`)}`
          yield* build(source)
        }
        rebuilt.push(source.name)
      }
      return rebuilt
    })

    return { describe, info, beginBulk, build, reindex } as const
  })
}) {}
