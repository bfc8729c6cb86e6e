import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect, Option } from "effect"
import { AutoEmbedConfig, type IndexKind } from "../config/AutoEmbedConfig.js"
import { SetRegistry } from "../sets/SetRegistry.js"
import { findIndexes, hnswIndexSql } from "../sources/Installer.js"
import { indexSettingsOf, type Source, Sources } from "../sources/Sources.js"
import { Database } from "./Database.js"
import { causeChain, sqlReason } from "./SqlFailure.js"
import { stateTables } from "./State.js"

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
  /** The index exists, is valid and is built as configured (an index of the user's own: valid). */
  readonly matchesConfig: boolean
  /** autoembed created this index (else it is the user's, which autoembed uses but never changes). */
  readonly owned: boolean
}

/**
 * Bytes of pgvector's in-memory HNSW graph per row, measured with pgvector 0.8.0 (the row count
 * at which its "no longer fits into maintenance_work_mem" notice appears): the vector, about 280
 * bytes of element, and 32 bytes per unit of m for the neighbour lists.
 */
export const hnswGraphBytesPerRow = (kind: IndexKind, dimensions: number, m: number): number =>
  (kind === "halfvec" ? 2 : 4) * dimensions + 8 + 280 + 32 * m

/**
 * maintenance_work_mem for a build: what the graph needs with a fifth spare, at least 64 MB and at
 * most AUTOEMBED_INDEX_BUILD_MEMORY_MB. Not always the maximum: a parallel build allocates (and
 * the kernel zeroes) all of it up front, which costs seconds at many gigabytes.
 */
export const buildMemoryPlan = (
  rows: number,
  config: {
    readonly indexKind: IndexKind
    readonly dimensions: number
    readonly hnswM: number
    readonly indexBuildMemoryMb: number
  }
) => {
  const neededMb = Math.ceil(
    (rows * hnswGraphBytesPerRow(config.indexKind, config.dimensions, config.hnswM)) / 1024 / 1024
  )
  const memoryMb = Math.min(config.indexBuildMemoryMb, Math.max(64, Math.ceil(neededMb * 1.2)))
  return { rows, neededMb, memoryMb, fits: neededMb <= config.indexBuildMemoryMb }
}

const isSharedMemoryExhausted = (error: SqlError): boolean =>
  /could not resize shared memory segment|No space left on device|out of shared memory/i.test(
    causeChain(error).map((c) => (typeof c.message === "string" ? c.message : "")).join(" ")
  )

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
 * to apply changed index settings. On a server a build runs CONCURRENTLY with parallel workers and
 * the memory the graph needs (AUTOEMBED_INDEX_BUILD_MEMORY_MB at most), so writes and searches go on.
 */
export class VectorIndex extends Effect.Service<VectorIndex>()("@autoembed/core/VectorIndex", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const sources = yield* Sources
    const registry = yield* SetRegistry
    const config = yield* AutoEmbedConfig
    const database = yield* Database
    const server = database.kind === "postgres"
    const st = stateTables(sql, config.stateSchema)
    const settings = indexSettingsOf(config)

    /** The state of these sources' indexes: two catalog queries, however many sources. */
    const infos = (list: ReadonlyArray<Source>) =>
      Effect.gen(function*() {
        const rows = yield* findIndexes(list.map((s) => s.index))
        const marks = yield* sql<{ source: string; state: string; started_at: Date }>`
          SELECT source, state, started_at FROM ${st.indexState} WHERE source = ANY(${list.map((s) => s.name)}::text[])`
        return list.map((source): IndexInfo => {
          const row = rows.find((r) => r.schema === source.index.schema && r.name === source.index.name)
          const mark = marks.find((m) => m.source === source.name)
          const parsed = row ? parseIndexDefinition(row.definition) : null
          return {
            source: source.name,
            name: source.index.name,
            owned: source.index.owned,
            exists: row !== undefined,
            valid: row?.valid ?? false,
            kind: parsed?.kind ?? null,
            m: parsed?.m ?? null,
            efConstruction: parsed?.efConstruction ?? null,
            definition: row?.definition ?? null,
            bulkMark: mark ? `${mark.state} since ${new Date(mark.started_at).toISOString()}` : null,
            matchesConfig: row !== undefined && row.valid &&
              (!source.index.owned || (parsed!.kind === config.indexKind && parsed!.m === config.hnswM &&
                parsed!.efConstruction === config.hnswEfConstruction))
          }
        })
      })

    const info = (source: Source) => Effect.map(infos([source]), (all) => all[0])

    /** The state of the configured sources' indexes, or of these source objects' (an embedding set's). */
    const describe = Effect.fn("VectorIndex.describe")(function*(of: ReadonlyArray<Source> = sources.all) {
      return yield* infos(of)
    })

    /**
     * Marks the source as under a bulk load: start-up's ensureIndexes leaves its index alone, and the
     * next backfill of it loads without the index and builds it once at its end (which clears the mark).
     * An index of the user's own is theirs: never dropped, so such a source is never marked.
     */
    const markBulk = (source: Source) =>
      source.index.owned
        ? sql`INSERT INTO ${st.indexState} (source, state, note)
            VALUES (${source.name}, 'bulk_loading', 'index dropped for a bulk load')
            ON CONFLICT (source) DO UPDATE SET state = 'bulk_loading', started_at = now()`.pipe(Effect.asVoid)
        : Effect.void

    /** Marks the source and drops its index, so a bulk load writes without per-row index maintenance. */
    const beginBulk = Effect.fn("VectorIndex.beginBulk")(function*(source: Source) {
      if (!source.index.owned) return
      yield* markBulk(source)
      yield* sql`DROP INDEX IF EXISTS ${sql(`${source.index.schema}.${source.index.name}`)}`
      yield* Effect.logInfo(
        `autoembed: ${source.name}: HNSW index dropped for a bulk load; search scans exactly until it is rebuilt`
      )
    })

    /**
     * Builds the configured index (replacing an invalid one), then clears the bulk mark. On a server
     * the build is CONCURRENT (writes and searches go on) on one session with parallel workers and
     * maintenance_work_mem sized to the graph; PGlite builds in place.
     */
    const build = Effect.fn("VectorIndex.build")(function*(source: Source, options: { readonly name?: string } = {}) {
      const spec = source.index
      const name = options.name ?? spec.name
      const current = yield* info(source)
      const [statement] = hnswIndexSql(sql, spec, settings(source), { concurrently: server, name }).compile()
      const indexed = sql(`${spec.schema}.${spec.table}`)
      const qualifiedName = sql(`${spec.schema}.${name}`)
      const started = Date.now()
      if (server) {
        yield* Effect.scoped(
          Effect.gen(function*() {
            const conn = yield* sql.reserve
            const setting = (key: string, value: string) =>
              conn.execute("SELECT set_config($1, $2, false)", [key, value], undefined)
            // The session goes back to the pool afterwards: leave it as it was.
            yield* Effect.addFinalizer(() =>
              Effect.forEach([
                "maintenance_work_mem",
                "max_parallel_maintenance_workers",
                "min_parallel_table_scan_size"
              ], (key) => conn.executeRaw(`RESET ${key}`, [])).pipe(Effect.ignore)
            )
            const dropInvalid = conn.executeRaw(
              sql`DROP INDEX CONCURRENTLY IF EXISTS ${qualifiedName}`.compile()[0],
              []
            )
            if (name === spec.name && current.exists && !current.valid) yield* dropInvalid
            const [vectors] = yield* sql<{ n: number }>`
              SELECT count(*)::int8 AS n FROM ${indexed} WHERE ${sql(spec.column)} IS NOT NULL`
            // The source's own dimensions: a set of another model may be larger than the configured one.
            const plan = buildMemoryPlan(Number(vectors?.n ?? 0), { ...config, dimensions: source.dimensions })
            if (!plan.fits) {
              yield* Effect.logWarning(
                `autoembed: ${source.name}: the HNSW graph of ${plan.rows} rows needs about ${plan.neededMb} MB ` +
                  `but AUTOEMBED_INDEX_BUILD_MEMORY_MB is ${config.indexBuildMemoryMb}; ` +
                  "pgvector finishes such a build on disk, many times slower. Raise AUTOEMBED_INDEX_BUILD_MEMORY_MB " +
                  `(and the server's /dev/shm, which holds a parallel build's graph).`
              )
            }
            yield* setting("maintenance_work_mem", `${plan.memoryMb}MB`)
            // A table whose vectors live in TOAST looks small to the planner, which would build serially.
            yield* setting("min_parallel_table_scan_size", "0")
            if (Option.isSome(config.indexBuildWorkers)) {
              yield* setting("max_parallel_maintenance_workers", String(config.indexBuildWorkers.value))
            }
            yield* conn.executeRaw(statement, []).pipe(
              Effect.catchIf(isSharedMemoryExhausted, (error) =>
                Effect.gen(function*() {
                  // A parallel build keeps its graph in /dev/shm (64 MB by default in a container): build in one
                  // process instead.
                  yield* Effect.logWarning(
                    `autoembed: ${source.name}: the server could not allocate ${plan.memoryMb} MB of shared memory ` +
                      "for a parallel index build " +
                      `(${sqlReason(error)}); building with one process instead. Give PostgreSQL a larger /dev/shm ` +
                      `(Docker: shm_size) or lower AUTOEMBED_INDEX_BUILD_MEMORY_MB.`
                  )
                  yield* dropInvalid
                  yield* setting("max_parallel_maintenance_workers", "0")
                  yield* conn.executeRaw(statement, [])
                }))
            )
            yield* conn.executeRaw(sql`ANALYZE ${indexed}`.compile()[0], [])
            // A bulk load has just written a row per vector into the bookkeeping: without fresh
            // statistics (autovacuum may be off, or not yet round) a new set's key looks like one row,
            // and counts and search plans over it go wrong (seen in bench/sets.ts: a count of minutes).
            yield* conn.executeRaw(sql`ANALYZE ${st.rows}`.compile()[0], [])
          })
        )
      } else {
        yield* sql.withTransaction(
          Effect.gen(function*() {
            if (name === spec.name && current.exists && !current.valid) {
              yield* sql`DROP INDEX IF EXISTS ${qualifiedName}`
            }
            yield* sql`SELECT set_config('maintenance_work_mem', '256MB', true)`
            yield* sql.unsafe(statement)
          })
        )
      }
      if (name === spec.name) yield* sql`DELETE FROM ${st.indexState} WHERE source = ${source.name}`
      yield* Effect.logInfo(
        `autoembed: ${source.name}: HNSW index built in ${((Date.now() - started) / 1000).toFixed(1)} s`
      )
    })

    /**
     * Applies the configured index settings: sources whose index is missing, invalid, marked by an
     * interrupted bulk load, or built with other settings get a new one (`force` rebuilds all).
     * On a server the new index is built beside the old one, which keeps serving until the swap.
     */
    const reindex = Effect.fn("VectorIndex.reindex")(
      function*(options: { readonly force?: boolean; readonly sources?: ReadonlyArray<string> } = {}) {
        const rebuilt: Array<string> = []
        // Every set's index: the configured sets' and those of the sets added beside them.
        for (const source of yield* registry.refresh) {
          if (options.sources && !options.sources.includes(source.set?.source ?? source.name)) continue
          // An index of the user's own is theirs to change.
          if (!source.index.owned || !source.index.create) continue
          const current = yield* info(source)
          if (current.matchesConfig && current.bulkMark === null && !options.force) continue
          const spec = source.index
          if (server && current.exists && current.valid) {
            const temporary = `${spec.name}_new`
            yield* sql`DROP INDEX IF EXISTS ${sql(`${spec.schema}.${temporary}`)}`
            yield* build(source, { name: temporary })
            yield* sql.withTransaction(
              Effect.gen(function*() {
                yield* sql`DROP INDEX IF EXISTS ${sql(`${spec.schema}.${spec.name}`)}`
                yield* sql`ALTER INDEX ${sql(`${spec.schema}.${temporary}`)} RENAME TO ${sql(spec.name)}`
              })
            )
            yield* sql`DELETE FROM ${st.indexState} WHERE source = ${source.name}`
          } else {
            if (current.exists) yield* sql`DROP INDEX IF EXISTS ${sql(`${spec.schema}.${spec.name}`)}`
            yield* build(source)
          }
          rebuilt.push(source.name)
        }
        return rebuilt
      }
    )

    return { describe, info, markBulk, beginBulk, build, reindex } as const
  })
}) {}
