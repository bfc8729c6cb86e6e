import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"
import { AutoEmbedConfig } from "../config/AutoEmbedConfig.js"
import { Database } from "../storage/Database.js"
import { stateTables, vectorTableName } from "../storage/State.js"
import { checkPrerequisites, findIndexes, installedTriggers } from "./Installer.js"
import { resolveSource, type Source } from "./SourceCatalog.js"
import { declaredSources, originOf, resolveContext } from "./Sources.js"

export interface SourceFinding {
  readonly name: string
  readonly table: string
  readonly builtin: boolean
  /** "column schema.table.col" or "autoembed schema" */
  readonly storage: string | null
  readonly rows: number | null
  readonly missingVectors: number | null
  /** Triggers installed for it, out of 3 (insert, update, delete). */
  readonly triggers: number
  readonly index: {
    readonly name: string
    readonly state: "valid" | "invalid" | "missing" | "none"
    readonly owned: boolean
  } | null
  readonly problems: ReadonlyArray<string>
}

/**
 * What autoembed finds for each declared source, without changing anything: the table, its rows and
 * missing vectors, the triggers and the index; every problem as one line that names the fix.
 */
export const inspectSources = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const config = yield* AutoEmbedConfig
  const database = yield* Database
  const schema = config.stateSchema
  const general: Array<string> = []
  yield* checkPrerequisites(schema, database.description).pipe(
    Effect.catchTag("DatabaseError", (e) => Effect.sync(() => general.push(e.message)))
  )
  const declared = yield* declaredSources(config)
  const triggers = yield* installedTriggers(schema)
  const installed = (yield* sql<{ r: string | null }>`SELECT to_regclass(${`${schema}.rows`})::text AS r`)[0].r !== null
  const ctx = { ...resolveContext(config, database.kind === "postgres"), origin: originOf(config) }
  const findings: Array<SourceFinding> = []
  for (const d of declared) {
    const resolved = yield* resolveSource(d.name, d.config, {
      ...ctx,
      builtin: d.builtin,
      origin: d.builtin ? "the built-in model" : ctx.origin
    })
    if (!resolved.source) {
      findings.push({
        name: d.name,
        table: d.config.table,
        builtin: d.builtin,
        storage: null,
        rows: null,
        missingVectors: null,
        triggers: 0,
        index: null,
        problems: resolved.problems
      })
      continue
    }
    findings.push(
      yield* inspectOne(resolved.source, {
        installed,
        triggers: triggers.filter((t) =>
          t.source === d.name && t.schema === resolved.source!.schema && t.table === resolved.source!.tableName
        ).length
      })
    )
  }
  const problems = [...general, ...findings.flatMap((f) => f.problems)]
  return { database: database.description, schema, configFile: originOf(config), sources: findings, problems }
})

const inspectOne = (source: Source, state: { readonly installed: boolean; readonly triggers: number }) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const config = yield* AutoEmbedConfig
    const st = stateTables(sql, config.stateSchema)
    const table = sql(`${source.schema}.${source.tableName}`)
    const internalExists = source.storage.kind === "internal" &&
      (yield* sql<{ r: string | null }>`SELECT to_regclass(${`${config.stateSchema}.${
          vectorTableName(source.name)
        }`})::text AS r`)[0].r !== null
    const [counts] = yield* sql<{ rows: number; missing: number }>`
      SELECT count(*)::int AS rows,
        ${
      source.storage.kind === "column"
        ? sql`count(*) FILTER (WHERE t.${sql(source.storage.column)} IS NULL)::int`
        : internalExists
        ? sql`count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM ${st.vectors(source.name)} v WHERE v.id = t.${
          sql(source.idColumn)
        }))::int`
        : sql`count(*)::int`
    } AS missing
      FROM ${table} t`
    const [index] = yield* findIndexes([source.index])
    const problems: Array<string> = []
    if (!state.installed || state.triggers < 3) {
      problems.push(
        `Source "${source.name}": ${state.triggers} of 3 triggers installed on ${source.table}; ` +
          "run `pnpm cli migrate`"
      )
    }
    const wantsIndex = source.index.create || !source.index.owned
    if (wantsIndex && (!index || !index.valid) && state.installed) {
      problems.push(
        `Source "${source.name}": the HNSW index ${source.index.schema}.${source.index.name} is ${
          index ? "not valid" : "missing"
        }; run \`pnpm cli reindex\``
      )
    }
    const finding: SourceFinding = {
      name: source.name,
      table: source.table,
      builtin: source.builtin,
      storage: source.storage.kind === "column"
        ? `column ${source.table}.${source.storage.column}`
        : `${config.stateSchema}.${vectorTableName(source.name)}`,
      rows: counts.rows,
      missingVectors: counts.missing,
      triggers: state.triggers,
      index: wantsIndex
        ? {
          name: `${source.index.schema}.${source.index.name}`,
          state: index ? (index.valid ? "valid" : "invalid") : "missing",
          owned: source.index.owned
        }
        : null,
      problems
    }
    return finding
  })
