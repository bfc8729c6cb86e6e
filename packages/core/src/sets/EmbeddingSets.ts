import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Either, Schema } from "effect"
import { AutoEmbedConfig } from "../config/AutoEmbedConfig.js"
import { formatIssues } from "../config/SourceConfig.js"
import { profileFor } from "../providers/ModelProfiles.js"
import { makeProviderFor, type ProviderSpec, specProblem } from "../providers/ProviderSpec.js"
import { ensureIndexes, installSource, removeSetObjects } from "../sources/Installer.js"
import { describeTable, type Source } from "../sources/SourceCatalog.js"
import { indexSettingsOf, originOf, Sources } from "../sources/Sources.js"
import { sourceSql } from "../sources/SourceSql.js"
import { Database } from "../storage/Database.js"
import { EmbeddingStore, type SourceCounts } from "../storage/EmbeddingStore.js"
import { sqlReason } from "../storage/SqlFailure.js"
import { stateTables } from "../storage/State.js"
import { type IndexInfo, VectorIndex } from "../storage/VectorIndex.js"
import { compareSets } from "./SetCompare.js"
import { SetError, SetRegistry } from "./SetRegistry.js"
import { defaultSetName, type SetRow, setSource } from "./SetRows.js"
import { type AddSetInput, AddSetRequest, type CompareInput, CompareRequest, type SetReport } from "./SetSchemas.js"

/**
 * Bytes one vector takes in pgvector's format (4 per dimension, an 8-byte header): a set's
 * `storageBytes` is its embedded rows times this, whether they sit in autoembed's table or the user's.
 */
const vectorBytes = (dimensions: number) => 4 * dimensions + 8

/** Figures of set targets a caller has already read, by target name. */
export interface KnownFigures {
  readonly counts?: Readonly<Record<string, SourceCounts>>
  readonly indexes?: ReadonlyMap<string, IndexInfo>
}

/** One set's report from its row and the figures read for its target. */
const toReport = (
  row: SetRow,
  target: Source,
  counts: SourceCounts,
  index: IndexInfo,
  indexBytes: number,
  tableBytes: number | null
): SetReport => ({
  source: row.source,
  name: row.name,
  key: row.key,
  provider: row.provider,
  model: row.model,
  dimensions: row.dimensions,
  baseUrl: row.baseUrl,
  storage: target.storage.kind,
  vectorColumn: target.storage.kind === "column" ? target.storage.column : null,
  configured: row.configured,
  active: row.active,
  previous: row.previous,
  phase: row.active ? "active" : counts.missing + counts.stale > 0 ? "building" : "ready",
  total: counts.total,
  embedded: counts.embedded,
  missing: counts.missing,
  stale: counts.stale,
  failed: counts.failed,
  pending: counts.pending,
  progress: counts.total === 0 ? 1 : Math.min(1, counts.embedded / counts.total),
  index: {
    name: target.index.name,
    exists: index.exists,
    valid: index.valid,
    bulkMark: index.bulkMark,
    sizeBytes: indexBytes
  },
  storageBytes: counts.embedded * vectorBytes(row.dimensions),
  tableBytes,
  createdAt: row.createdAt.toISOString(),
  activatedAt: row.activatedAt?.toISOString() ?? null
})

const invalid = (message: string) => new SetError({ status: 400, message })
const conflict = (message: string) => new SetError({ status: 409, message })

/**
 * The lifecycle of embedding sets: add one beside the active set (its backfill is done by the
 * running workers, or by the caller with `backfill`), list them with their progress, activate
 * one in a single transaction, roll back to the previous one, drop a retired one. A change of
 * model or of dimensions is a new set: nothing is destroyed until the old set is dropped.
 */
export class EmbeddingSets extends Effect.Service<EmbeddingSets>()("@autoembed/core/EmbeddingSets", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const config = yield* AutoEmbedConfig
    const database = yield* Database
    const sources = yield* Sources
    const registry = yield* SetRegistry
    const store = yield* EmbeddingStore
    const vectorIndex = yield* VectorIndex
    const t = stateTables(sql, config.stateSchema)
    const server = database.kind === "postgres"

    /** The source object a set's rows are kept under. */
    const targetOf = (row: SetRow): Source => {
      const base = sources.all.find((s) => s.name === row.source)!
      return row.configured ? base : setSource(base, row, config.stateSchema)
    }

    /** On-disk sizes of these relations (absent ones: 0), in one statement. */
    const sizesOf = (relations: ReadonlyArray<string>) =>
      Effect.map(
        sql<{ relation: string; n: number | null }>`
          SELECT r AS relation, pg_total_relation_size(to_regclass(r))::int8 AS n
          FROM unnest(${relations}::text[]) AS r`,
        (rows) => new Map(rows.map((r) => [r.relation, Number(r.n ?? 0)]))
      )

    /**
     * The reports of these sets: counts, index state and sizes read once for all of them, except
     * what `known` already holds by target name (Status has counted the configured sets).
     */
    const reports = (rows: ReadonlyArray<SetRow>, known: KnownFigures = {}) =>
      Effect.gen(function*() {
        const targets = rows.map(targetOf)
        const counts = {
          ...(yield* store.counts({ withTotal: true }, targets.filter((t) => known.counts?.[t.name] === undefined))),
          ...known.counts
        }
        const indexes = new Map([
          ...(known.indexes ?? []),
          ...(yield* vectorIndex.describe(targets.filter((t) => !known.indexes?.has(t.name))))
            .map((i) => [i.source, i] as const)
        ])
        const indexRelation = (t: Source) => `${t.index.schema}.${t.index.name}`
        // The table's own size only where the table is the set's alone; a user's table holds more than vectors.
        const tableRelation = (t: Source) =>
          t.storage.kind === "internal" ? `${config.stateSchema}.${t.storage.table}` : undefined
        const sizes = yield* sizesOf(targets.flatMap((t) => [indexRelation(t), tableRelation(t) ?? []].flat()))
        return rows.map((row, i) => {
          const target = targets[i]
          const index = indexes.get(target.name)!
          const indexBytes = index.exists ? sizes.get(indexRelation(target)) ?? 0 : 0
          const table = tableRelation(target)
          const tableBytes = table === undefined ? null : Math.max(0, (sizes.get(table) ?? 0) - indexBytes)
          return toReport(row, target, counts[target.name], index, indexBytes, tableBytes)
        })
      })

    /**
     * Every set (of one source, or all), with its counts, index and size. `known`: figures the
     * caller has already read, so a status report counts each set once.
     */
    const list = Effect.fn("EmbeddingSets.list")(function*(source?: string, known?: KnownFigures) {
      if (source !== undefined) yield* registry.declared(source)
      const rows = (yield* registry.rows).filter((r) => source === undefined || r.source === source)
      return yield* reports(rows, known)
    })

    const report = (row: SetRow) => Effect.map(reports([row]), (all) => all[0])

    /** One set's report, by source and name. */
    const get = Effect.fn("EmbeddingSets.get")(function*(source: string, name: string) {
      return yield* report((yield* registry.find(source, name)).row)
    })

    /** Checks a vector column the new set is to fill; returns the problem, if any. */
    const checkColumn = (base: Source, column: string, dimensions: number, taken: ReadonlyArray<SetRow>) =>
      Effect.gen(function*() {
        const table = yield* describeTable(base.table)
        const found = table?.columns.find((c) => c.name === column)
        if (!table || !found) return `column ${base.table}.${column} does not exist`
        if (found.type !== `vector(${dimensions})`) {
          return `column ${base.table}.${column} is ${found.type}, not vector(${dimensions})`
        }
        if (!found.update) return `the database role may not UPDATE ${base.table}.${column}`
        if (!table.isOwner) return `creating the set's HNSW index on ${base.table} needs its owner's rights`
        const configuredColumn = base.storage.kind === "column" ? base.storage.column : undefined
        if (column === configuredColumn || taken.some((r) => r.vectorColumn === column)) {
          return `column ${base.table}.${column} already holds another set's vectors`
        }
        return undefined
      })

    /** The spec of a new set, with its dimensions, and a probe of the provider with it. */
    const specOf = (request: AddSetRequest) =>
      Effect.gen(function*() {
        // The provider and model first: a model the provider cannot have makes its size moot.
        const problem = specProblem(request, config)
        if (problem !== undefined) return yield* invalid(problem)
        const dimensions = request.dimensions ?? profileFor(request.provider, request.model).nativeDimensions
        if (dimensions === undefined) {
          return yield* invalid(
            `autoembed does not know how many dimensions ${request.model} returns; give them (--dimensions)`
          )
        }
        const spec: ProviderSpec = {
          provider: request.provider,
          model: request.model,
          dimensions,
          baseUrl: request.baseUrl
        }
        const provider = yield* Effect.mapError(makeProviderFor(spec, config), (e) => invalid(e.message))
        const probe = yield* Effect.either(provider.embed(["autoembed probe"], "document"))
        if (Either.isLeft(probe)) {
          return yield* invalid(
            `${request.provider} model ${request.model} cannot embed at ${dimensions} dimensions: ${
              probe.left.message.split("\n")[0]
            }`
          )
        }
        return spec
      })

    /**
     * Adds a set beside the source's others: records it, creates its storage and triggers, and
     * queues every row of the source for it, in one transaction (so no row written meanwhile is
     * missed). Its index is built now unless `bulk`: then the set is marked as under a bulk load and
     * the next backfill of it (the caller's) builds the index once, at its end.
     */
    const add = Effect.fn("EmbeddingSets.add")(
      function*(input: AddSetInput, options: { readonly bulk?: boolean } = {}) {
        const request = yield* Schema.decodeUnknown(AddSetRequest, { errors: "all", onExcessProperty: "error" })(input)
          .pipe(Effect.mapError((e) => invalid(formatIssues("set", e).replace(/^set: /gm, ""))))
        const base = yield* registry.declared(request.source)
        const spec = yield* specOf(request)
        const created = yield* sql.withTransaction(Effect.gen(function*() {
          yield* sql`SELECT pg_advisory_xact_lock(7215030002)`
          const existing = (yield* registry.rows).filter((r) => r.source === base.name)
          const name = request.name ??
            defaultSetName(base.name, spec.model, spec.dimensions, existing.map((r) => r.name))
          if (existing.some((r) => r.name === name)) {
            return yield* conflict(`Source "${base.name}" already has a set named "${name}"`)
          }
          if (request.vector !== undefined) {
            const problem = yield* checkColumn(base, request.vector, spec.dimensions, existing)
            if (problem !== undefined) return yield* invalid(`Set "${name}": ${problem}`)
          }
          const used = new Set((yield* sql<{ key: string }>`SELECT key FROM ${t.sets}`).map((r) => r.key))
          let n = 2
          while (used.has(`${base.name}@${n}`)) n++
          const key = `${base.name}@${n}`
          yield* sql`
          INSERT INTO ${t.sets} (source, name, key, provider, model, dimensions, base_url, vector_column)
          VALUES (${base.name}, ${name}, ${key}, ${spec.provider}, ${spec.model}, ${spec.dimensions},
            ${spec.baseUrl ?? null}, ${request.vector ?? null})`
          const row = (yield* registry.rows).find((r) => r.key === key)!
          const target = setSource(base, row, config.stateSchema)
          yield* installSource(target, config.stateSchema)
          // Bulk: marked in the same commit, so no process's ensureIndexes builds an empty index that
          // every row would then be inserted into one by one; the caller's backfill builds it once.
          if (options.bulk) yield* vectorIndex.markBulk(target)
          const { id, table } = sourceSql(sql)
          yield* sql`
          INSERT INTO ${t.queue} (source, row_id)
          SELECT ${key}, t.${id(target)}::text FROM ${table(target)} t
          ON CONFLICT DO NOTHING`
          yield* sql`SELECT pg_notify('autoembed_pending', ${key})`
          return target
        }))
        yield* registry.refresh
        if (!options.bulk) yield* ensureIndexes([created], config.stateSchema, indexSettingsOf(config), server)
        return { target: created, report: yield* get(base.name, created.set!.name) }
      }
    )

    /**
     * Makes a set the one search reads, in one transaction: the previous active set stays live and
     * becomes the rollback target. A set further behind than the active one is refused unless
     * `force`: under constant writes both lack the rows written in the last moments, and switching
     * then loses nothing search had, where switching to a set still backfilling would.
     */
    const activate = Effect.fn("EmbeddingSets.activate")(
      function*(source: string, name: string, options: { readonly force?: boolean } = {}) {
        const { all, row } = yield* registry.find(source, name)
        if (row.active) return yield* report(row)
        if (!options.force) {
          const current = all.find((r) => r.active)
          const targets = [targetOf(row), ...(current ? [targetOf(current)] : [])]
          const counts = yield* store.counts({ withTotal: true }, targets)
          const mine = counts[row.key]
          const tolerated = current ? counts[current.key].missing + counts[current.key].stale : 0
          if (mine.missing + mine.stale > tolerated) {
            return yield* conflict(
              `Set "${row.name}" is incomplete: ${mine.missing} of ${mine.total} rows have no vector yet` +
                `${mine.stale > 0 ? ` and ${mine.stale} are stale` : ""}` +
                `${tolerated > 0 ? ` (the active set lacks ${tolerated})` : ""}; wait for its backfill or use --force`
            )
          }
        }
        yield* switchTo(row)
        return yield* get(source, row.name)
      }
    )

    /** The swap itself: the old active set becomes `previous`, the new one active, at one commit. */
    const switchTo = (row: SetRow) =>
      sql.withTransaction(Effect.gen(function*() {
        yield* sql`SELECT pg_advisory_xact_lock(7215030002)`
        // Two processes activating the same set: the second must not make it its own rollback target.
        const now = yield* sql<{ active: boolean }>`SELECT active FROM ${t.sets} WHERE key = ${row.key}`
        if (now[0]?.active !== false) return
        yield* sql`UPDATE ${t.sets} SET previous = false WHERE source = ${row.source} AND previous`
        yield* sql`UPDATE ${t.sets} SET active = false, previous = true WHERE source = ${row.source} AND active`
        yield* sql`UPDATE ${t.sets} SET active = true, previous = false, activated_at = now() WHERE key = ${row.key}`
      }))

    /** Re-activates the set that was active before the last activation, at once (it stayed live). */
    const rollback = Effect.fn("EmbeddingSets.rollback")(function*(source: string) {
      yield* registry.declared(source)
      const previous = (yield* registry.rows).find((r) => r.source === source && r.previous)
      if (previous === undefined) {
        return yield* conflict(`Source "${source}" has no previous set to roll back to`)
      }
      yield* switchTo(previous)
      return yield* get(source, previous.name)
    })

    /**
     * Removes a retired set: its queue rows, bookkeeping, statistics, triggers, vector table or
     * owned index. The active set cannot be dropped, nor the configured one (the configuration
     * would bring it back at the next start).
     */
    const drop = Effect.fn("EmbeddingSets.drop")(function*(source: string, name: string) {
      const { row } = yield* registry.find(source, name)
      if (row.active) {
        return yield* conflict(`Set "${row.name}" is active; activate another set of "${source}" before dropping it`)
      }
      if (row.configured) {
        return yield* conflict(
          `Set "${row.name}" is the one the configuration declares for "${source}"; ` +
            "change EMBEDDING_PROVIDER / EMBEDDING_MODEL (or the source's declaration) instead"
        )
      }
      if (config.sources[row.source]?.sets?.[row.name] !== undefined) {
        return yield* conflict(
          `Set "${row.name}" is declared in ${originOf(config)} (sources.${row.source}.sets.${row.name}); ` +
            "remove it there first, or the next start adds it again"
        )
      }
      const target = targetOf(row)
      yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql`SELECT pg_advisory_xact_lock(7215030002)`
        yield* removeSetObjects(target, config.stateSchema)
        yield* sql`DELETE FROM ${t.queue} WHERE source = ${row.key}`
        yield* sql`DELETE FROM ${t.rows} WHERE source = ${row.key}`
        yield* sql`DELETE FROM ${t.bm25Terms} WHERE source = ${row.key}`
        yield* sql`DELETE FROM ${t.bm25Stats} WHERE source = ${row.key}`
        yield* sql`DELETE FROM ${t.indexState} WHERE source = ${row.key}`
        yield* sql`DELETE FROM ${t.sets} WHERE key = ${row.key}`
      })).pipe(
        Effect.catchTag("SqlError", (e) => Effect.fail(conflict(`Dropping set "${row.name}" failed: ${sqlReason(e)}`)))
      )
      yield* registry.refresh
      return { dropped: row.name, key: row.key }
    })

    /** Runs the same searches on two sets of a source and compares their answers (see `compareSets`). */
    const compare = Effect.fn("EmbeddingSets.compare")(function*(input: CompareInput) {
      const request = yield* Schema.decodeUnknown(CompareRequest, { errors: "all", onExcessProperty: "error" })(input)
        .pipe(Effect.mapError((e) => invalid(formatIssues("compare", e).replace(/^compare: /gm, ""))))
      const base = yield* registry.declared(request.source)
      const a = yield* get(base.name, request.a)
      const b = yield* get(base.name, request.b)
      return yield* compareSets(sql, request, base, [a, b])
    })

    return { list, get, add, activate, rollback, drop, compare, targetOf } as const
  })
}) {}
