import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Either } from "effect"
import type { SourceConfig } from "../config/SourceConfig.js"
import type { ProviderSpec } from "../providers/ProviderSpec.js"
import { sqlReason } from "../storage/SqlFailure.js"
import { vectorTableName } from "../storage/State.js"

/** How a filter column compares: numbers and dates take ranges, the rest equality. */
export type FilterKind = "integer" | "number" | "date" | "boolean" | "text"

export interface FilterColumn {
  readonly column: string
  readonly type: string
  readonly kind: FilterKind
}

/** Where a source's vectors live: the user's own vector(n) column, or a table in autoembed's schema. */
export type VectorStorage =
  | { readonly kind: "column"; readonly column: string }
  | { readonly kind: "internal"; readonly table: string }

/** The HNSW index search uses. `owned`: autoembed created it (and may drop, rebuild or remove it). */
export interface VectorIndexSpec {
  readonly schema: string
  readonly table: string
  readonly column: string
  readonly name: string
  readonly owned: boolean
  /** Create it when missing (a source may say `"index": false`). */
  readonly create: boolean
  /** The distance operator its operator class serves; search orders by it and scores by cosine. */
  readonly operator: "<=>" | "<->" | "<#>"
  /** For an index of the user's own: built on a halfvec cast of the column (ours follow AUTOEMBED_INDEX_TYPE). */
  readonly halfvec: boolean
}

/** A declared source, checked against the catalog: every name in it exists with the right type. */
export interface Source {
  readonly name: string
  readonly schema: string
  readonly tableName: string
  /** schema.table, for messages. */
  readonly table: string
  readonly idColumn: string
  /** SQL type of the id column, e.g. "bigint", "uuid", "text". */
  readonly idType: string
  /** How the text is made: a column, a template, or an SQL expression (see `textFragment`). */
  readonly text: TextSpec
  readonly watchColumns: ReadonlyArray<string>
  readonly storage: VectorStorage
  readonly dimensions: number
  readonly index: VectorIndexSpec
  readonly titleColumn: string | undefined
  readonly contentColumn: string | undefined
  readonly createdAtColumn: string | undefined
  readonly topicColumn: string | undefined
  readonly filters: ReadonlyArray<FilterColumn>
  /** Text search configuration of the full-text leg. */
  readonly language: string
  /** BM25 parameters of the full-text ranking. */
  readonly bm25: Bm25Parameters
  /** Part of the built-in knowledge model. */
  readonly builtin: boolean
  /**
   * Set when this object is one of the source's other embedding sets (see `sets/`): `name` is then
   * the set's key in autoembed's state, and `storage`, `dimensions` and `index` are the set's.
   * Absent for the set the configuration declares, embedded by the process's own provider.
   */
  readonly set?: SetBinding | undefined
}

/** An embedding set other than the configured one: what it is called and which model embeds it. */
export interface SetBinding {
  /** The source's own name (the API's entity type). */
  readonly source: string
  /** The set's name, as `messages@text-embedding-3-small`. */
  readonly name: string
  readonly spec: ProviderSpec
  /** `provider/model`, what its rows record. */
  readonly modelKey: string
}

/** The entity type a source object serves: its own name, or its set's source. */
export const entityOf = (s: Source): string => s.set?.source ?? s.name

export interface Bm25Parameters {
  readonly k1: number
  readonly b: number
}

/**
 * BM25 defaults as BEIR and Anserini use them (k1 0.9, b 0.4): on SciFact they beat Robertson's
 * classic 1.2 / 0.75, because abstracts vary in length less than web pages do.
 */
export const BM25_DEFAULTS: Bm25Parameters = { k1: 0.9, b: 0.4 }

/** The text of a row: literal pieces and column values (NULL renders as empty), or an SQL expression. */
export type TextSpec =
  | {
    readonly kind: "template"
    readonly parts: ReadonlyArray<{ readonly literal: string } | { readonly column: string }>
  }
  | { readonly kind: "sql"; readonly expression: string }

interface ColumnInfo {
  readonly name: string
  readonly type: string
  readonly update: boolean
}

export interface TableInfo {
  readonly oid: number
  readonly schema: string
  readonly name: string
  readonly kind: string
  readonly canSelect: boolean
  readonly canTrigger: boolean
  readonly isOwner: boolean
  readonly columns: ReadonlyArray<ColumnInfo>
  readonly primaryKey: ReadonlyArray<string>
  readonly hnsw: ReadonlyArray<{ readonly name: string; readonly definition: string; readonly valid: boolean }>
}

/** Parses "{title}\n\n{content}" into pieces; a text without placeholders is one column's name. */
export const parseTemplate = (text: string): Extract<TextSpec, { kind: "template" }> => {
  if (!/\{[^{}]+\}/.test(text)) return { kind: "template", parts: [{ column: text }] }
  const parts: Array<{ literal: string } | { column: string }> = []
  let last = 0
  for (const m of text.matchAll(/\{([^{}]+)\}/g)) {
    if (m.index! > last) parts.push({ literal: text.slice(last, m.index) })
    parts.push({ column: m[1] })
    last = m.index! + m[0].length
  }
  if (last < text.length) parts.push({ literal: text.slice(last) })
  return { kind: "template", parts }
}

/** The columns a text reads: a template's placeholders, or the table's columns named in an expression. */
export const columnsRead = (text: TextSpec, columns: ReadonlyArray<string>): Array<string> => {
  if (text.kind === "template") return [...new Set(text.parts.flatMap((p) => ("column" in p ? [p.column] : [])))]
  const words = new Set(
    [...text.expression.replace(/'(?:[^']|'')*'/g, " ").matchAll(/"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*)/g)]
      .map((m) => (m[1] !== undefined ? m[1].replace(/""/g, "\"") : m[2].toLowerCase()))
  )
  return columns.filter((c) => words.has(c))
}

const INTEGER = new Set(["smallint", "integer", "bigint"])
const NUMBER = new Set(["real", "double precision"])

export const filterKind = (type: string): FilterKind => {
  if (INTEGER.has(type)) return "integer"
  if (NUMBER.has(type) || type.startsWith("numeric")) return "number"
  if (type === "date" || type.startsWith("timestamp")) return "date"
  if (type === "boolean") return "boolean"
  return "text"
}

/** An existing HNSW index on the column, as `CREATE INDEX ... USING hnsw (embedding vector_cosine_ops)`. */
export const hnswOn = (definition: string, column: string): VectorIndexSpec["operator"] | undefined => {
  const m = /USING hnsw \((.+)\)/.exec(definition)
  if (!m) return undefined
  const body = m[1]
  const quoted = `"${column.replace(/"/g, "\"\"")}"`
  const names = body.includes(quoted) || new RegExp(`(^|[(\\s])${column}([)\\s:]|$)`).test(body)
  if (!names) return undefined
  if (/_cosine_ops/.test(body)) return "<=>"
  if (/_l2_ops/.test(body)) return "<->"
  if (/_ip_ops/.test(body)) return "<#>"
  return undefined
}

/** Reads one table's columns, key, privileges and HNSW indexes; unqualified names follow search_path. */
export const describeTable = (table: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [schemaName, tableName] = table.includes(".") ? table.split(".") : [undefined, table]
    const rows = yield* sql<{
      oid: number
      schema: string
      name: string
      kind: string
      can_select: boolean
      can_trigger: boolean
      is_owner: boolean
      columns: string | ReadonlyArray<{ name: string; type: string; update: boolean }>
      pk: string | ReadonlyArray<string> | null
      hnsw: string | ReadonlyArray<{ name: string; definition: string; valid: boolean }> | null
    }>`
      SELECT c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS kind,
        has_table_privilege(c.oid, 'SELECT') AS can_select, has_table_privilege(c.oid, 'TRIGGER') AS can_trigger,
        pg_has_role(c.relowner, 'USAGE') AS is_owner,
        (SELECT json_agg(json_build_object('name', a.attname, 'type', format_type(a.atttypid, a.atttypmod),
            'update', has_column_privilege(c.oid, a.attnum, 'UPDATE')) ORDER BY a.attnum)
          FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) AS columns,
        (SELECT json_agg(a.attname) FROM pg_index i
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
          WHERE i.indrelid = c.oid AND i.indisprimary) AS pk,
        (SELECT json_agg(json_build_object('name', ic.relname, 'definition', pg_get_indexdef(i.indexrelid),
            'valid', i.indisvalid))
          FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
          WHERE i.indrelid = c.oid AND am.amname = 'hnsw') AS hnsw
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relname = ${tableName}
        AND ${schemaName === undefined ? sql`n.nspname = ANY(current_schemas(false))` : sql`n.nspname = ${schemaName}`}
      ORDER BY array_position(current_schemas(false), n.nspname::text) NULLS LAST
      LIMIT 1`
    if (rows.length === 0) return undefined
    const r = rows[0]
    const json = <A>(
      v: string | A | null,
      fallback: A
    ): A => (v === null ? fallback : typeof v === "string" ? JSON.parse(v) : v)
    const info: TableInfo = {
      oid: Number(r.oid),
      schema: r.schema,
      name: r.name,
      kind: r.kind,
      canSelect: r.can_select,
      canTrigger: r.can_trigger,
      isOwner: r.is_owner,
      columns: json(r.columns, []),
      primaryKey: json(r.pk, []),
      hnsw: json(r.hnsw, [])
    }
    return info
  })

export interface ResolveContext {
  /** Where the declaration comes from, for messages ("autoembed.config.json", "code", "built-in"). */
  readonly origin: string
  readonly dimensions: number
  readonly stateSchema: string
  readonly builtin: boolean
  readonly server: boolean
}

const parseVectorDimensions = (type: string): number | undefined => {
  const m = /^vector\((\d+)\)$/.exec(type)
  return m ? Number(m[1]) : undefined
}

/**
 * Checks one declared source against the catalog. Returns the resolved source, or one line per
 * problem, each naming the source, the key to fix and the object in the database.
 */
export const resolveSource = (name: string, config: SourceConfig, ctx: ResolveContext) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const at = (key: string) => `Source "${name}" (sources.${name}.${key} in ${ctx.origin})`
    const table = yield* describeTable(config.table)
    if (table === undefined) {
      return {
        problems: [
          `${at("table")}: table ${config.table} does not exist${
            config.table.includes(".") ? "" : " in the search_path"
          }; create it or fix the name`
        ]
      }
    }
    const qualified = `${table.schema}.${table.name}`
    const problems: Array<string> = []
    if (table.kind !== "r" && table.kind !== "p") {
      problems.push(
        `${at("table")}: ${qualified} is not a table (a view or another relation); declare the table it reads`
      )
    }
    const byName = new Map(table.columns.map((c) => [c.name, c]))
    const known = table.columns.map((c) => c.name).join(", ")
    const column = (key: string, col: string | undefined) => {
      if (col === undefined) return undefined
      const found = byName.get(col)
      if (!found) problems.push(`${at(key)}: column ${qualified}.${col} does not exist; columns are ${known}`)
      return found
    }
    // The key: given, or the single-column primary key.
    let idColumn = config.id
    if (idColumn === undefined) {
      if (table.primaryKey.length === 1) idColumn = table.primaryKey[0]
      else {problems.push(
          `${at("id")}: ${qualified} has ${
            table.primaryKey.length === 0 ? "no primary key" : "a primary key of several columns"
          }; set "id" to a unique column`
        )}
    }
    const id = column("id", idColumn)
    const text: TextSpec = typeof config.text === "string"
      ? parseTemplate(config.text)
      : { kind: "sql", expression: config.text.sql }
    if (text.kind === "template") { for (const p of text.parts) if ("column" in p) column("text", p.column) }
    const watch = config.watch ?? columnsRead(text, table.columns.map((c) => c.name))
    for (const w of config.watch ?? []) column("watch", w)
    if (watch.length === 0) {
      problems.push(`${at("watch")}: cannot tell which columns the text expression reads; list them in "watch"`)
    }
    if (text.kind === "sql") {
      const checked = yield* sql`SELECT (${sql.literal(text.expression)})::text FROM ${sql(qualified)} LIMIT 0`.pipe(
        Effect.either
      )
      if (Either.isLeft(checked)) {
        problems.push(`${at("text")}: the expression does not run on ${qualified}: ${sqlReason(checked.left)}`)
      }
    }
    for (const key of ["title", "content", "created_at", "topic"] as const) column(key, config[key])
    const filters: Array<FilterColumn> = []
    for (const f of config.filters ?? []) {
      const c = column("filters", f)
      if (c) filters.push({ column: f, type: c.type, kind: filterKind(c.type) })
    }
    const created = config.created_at === undefined ? undefined : byName.get(config.created_at)
    if (created && filterKind(created.type) !== "date") {
      problems.push(
        `${at("created_at")}: ${qualified}.${config.created_at} is ${created.type}, not a date or timestamp`
      )
    }
    const language = config.language ?? "english"
    const ts = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_ts_config WHERE cfgname = ${language}`
    if ((ts[0]?.n ?? 0) === 0) {
      problems.push(
        `${at("language")}: no text search configuration "${language}" in this database (try english or simple)`
      )
    }
    let storage: VectorStorage = { kind: "internal", table: vectorTableName(name) }
    let index: VectorIndexSpec = {
      schema: ctx.stateSchema,
      table: vectorTableName(name),
      column: "embedding",
      name: `${vectorTableName(name)}_hnsw`,
      owned: true,
      create: config.index !== false,
      operator: "<=>",
      halfvec: false
    }
    if (config.vector !== undefined) {
      const v = column("vector", config.vector)
      if (v) {
        const dims = parseVectorDimensions(v.type)
        if (dims === undefined) {
          problems.push(
            `${
              at("vector")
            }: ${qualified}.${v.name} is ${v.type}; it must be vector(n) with a fixed number of dimensions`
          )
        } else if (dims !== ctx.dimensions) {
          problems.push(
            `${at("vector")}: ${qualified}.${v.name} is vector(${dims}) ` +
              `but EMBEDDING_DIMENSIONS is ${ctx.dimensions}; set EMBEDDING_DIMENSIONS=${dims} (and a ${dims}-d model)`
          )
        }
        if (!v.update) {
          problems.push(
            `${
              at("vector")
            }: the database role may not UPDATE ${qualified}.${v.name}; GRANT UPDATE (${v.name}) ON ${qualified} to it`
          )
        }
        storage = { kind: "column", column: v.name }
        const existing = table.hnsw.filter((i) => i.valid).map((i) => ({
          ...i,
          operator: hnswOn(i.definition, v.name)
        })).find((i) => i.operator !== undefined)
        const ownName = `autoembed_${name}_hnsw`
        const ours = table.hnsw.find((i) => i.name === ownName)
        index = existing && existing.name !== ownName && !ours
          ? {
            schema: table.schema,
            table: table.name,
            column: v.name,
            name: existing.name,
            owned: false,
            create: false,
            operator: existing.operator!,
            halfvec: existing.definition.includes("halfvec")
          }
          : {
            schema: table.schema,
            table: table.name,
            column: v.name,
            name: ownName,
            owned: true,
            create: config.index !== false,
            operator: "<=>",
            halfvec: false
          }
        if (index.owned && index.create && !table.isOwner) {
          problems.push(
            `${at("index")}: creating the HNSW index on ${qualified} needs its owner's rights; ` +
              `run as the owner, create an HNSW index on ${v.name} yourself, or set "index": false`
          )
        }
        if (index.owned && index.create && table.kind === "p") {
          problems.push(
            `${at("index")}: ${qualified} is partitioned, so its index cannot be built CONCURRENTLY; ` +
              `create an HNSW index on ${v.name} yourself or set "index": false`
          )
        }
      }
    }
    if (!table.canSelect) {
      problems.push(
        `${at("table")}: the database role may not SELECT from ${qualified}; GRANT SELECT ON ${qualified} to it`
      )
    }
    if (!table.canTrigger) {
      problems.push(
        `${at("table")}: the database role may not create triggers on ${qualified}; ` +
          `GRANT TRIGGER ON ${qualified} to it (or run as its owner)`
      )
    }
    if (problems.length > 0 || id === undefined) return { problems }
    const source: Source = {
      name,
      schema: table.schema,
      tableName: table.name,
      table: qualified,
      idColumn: id.name,
      idType: id.type,
      text,
      watchColumns: watch,
      storage,
      dimensions: ctx.dimensions,
      index,
      titleColumn: config.title,
      contentColumn: config.content,
      createdAtColumn: config.created_at,
      topicColumn: config.topic,
      filters,
      language,
      bm25: { k1: config.bm25?.k1 ?? BM25_DEFAULTS.k1, b: config.bm25?.b ?? BM25_DEFAULTS.b },
      builtin: ctx.builtin
    }
    return { source, problems: [] as Array<string> }
  })
