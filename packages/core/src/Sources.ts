import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Context, Data, Effect, Layer } from "effect"
import { AutoEmbedConfig } from "./AutoEmbedConfig.js"

/**
 * A table whose rows get embeddings. Built in: `atoms` and `messages`; library users register
 * their own. `text` is a SQL expression over the table's columns (trusted code, never user input),
 * and `watchColumns` are the columns it reads: changing one of them re-queues the row.
 */
export interface SourceDefinition {
  /** Entity type name used in the API, status and the queue: lowercase letters, digits, underscore. */
  readonly name: string
  /** Table, optionally schema-qualified ("app.documents"). */
  readonly table: string
  /** Primary key column (any type; it is compared as its own type). Default "id". */
  readonly idColumn?: string
  /** SQL expression producing the text to embed, e.g. "coalesce(title, '') || E'\\n\\n' || body". */
  readonly text: string
  readonly watchColumns: ReadonlyArray<string>
  /** Columns shown in search results. */
  readonly titleColumn?: string
  readonly contentColumn?: string
  readonly topicColumn?: string
  readonly createdAtColumn?: string
  /** A tsvector column for full-text / hybrid search; without it the source is vector-only. */
  readonly tsvectorColumn?: string
}

export interface Source extends Required<Omit<SourceDefinition, "titleColumn" | "topicColumn" | "createdAtColumn" | "tsvectorColumn" | "contentColumn">> {
  readonly titleColumn: string | undefined
  readonly contentColumn: string | undefined
  readonly topicColumn: string | undefined
  readonly createdAtColumn: string | undefined
  readonly tsvectorColumn: string | undefined
  /** SQL type of the id column, e.g. "bigint", "uuid", "text". */
  readonly idType: string
  readonly schema: string
  readonly tableName: string
  /** Name of the HNSW index on the embedding column. */
  readonly indexName: string
}

export const builtinSources: ReadonlyArray<SourceDefinition> = [
  {
    name: "atoms",
    table: "atoms",
    idColumn: "id",
    text: "coalesce(title, '') || E'\\n\\n' || coalesce(content, '')",
    watchColumns: ["title", "content"],
    titleColumn: "title",
    contentColumn: "content",
    topicColumn: "topic_id",
    createdAtColumn: "created_at",
    tsvectorColumn: "search_tsv"
  },
  {
    name: "messages",
    table: "messages",
    idColumn: "id",
    text: "coalesce(content, '')",
    watchColumns: ["content"],
    titleColumn: undefined,
    contentColumn: "content",
    topicColumn: "topic_id",
    createdAtColumn: "created_at",
    tsvectorColumn: "search_tsv"
  }
]

export class SourceError extends Data.TaggedError("SourceError")<{ readonly message: string; readonly cause?: unknown }> {}

/** The embedding column does not have the configured number of dimensions. */
export class DimensionMismatch extends Data.TaggedError("DimensionMismatch")<{
  readonly message: string
  readonly source: string
  readonly columnDimensions: number
  readonly configuredDimensions: number
}> {}

const identifier = /^[A-Za-z_][A-Za-z0-9_]*$/
const sourceName = /^[a-z][a-z0-9_]{0,62}$/

const validate = (def: SourceDefinition): Effect.Effect<SourceDefinition, SourceError> => {
  const problems: Array<string> = []
  if (!sourceName.test(def.name)) problems.push(`name "${def.name}" must be lowercase letters, digits and _`)
  const parts = def.table.split(".")
  if (parts.length > 2 || !parts.every((p) => identifier.test(p))) problems.push(`table "${def.table}" is not a plain identifier`)
  for (const c of [def.idColumn ?? "id", ...def.watchColumns, def.titleColumn, def.contentColumn, def.topicColumn, def.createdAtColumn, def.tsvectorColumn]) {
    if (c !== undefined && !identifier.test(c)) problems.push(`column "${c}" is not a plain identifier`)
  }
  if (def.watchColumns.length === 0) problems.push("watchColumns must name the columns the text reads")
  if (def.text.trim() === "") problems.push("text must be a SQL expression")
  return problems.length === 0
    ? Effect.succeed(def)
    : Effect.fail(new SourceError({ message: `Source ${def.name}: ${problems.join("; ")}` }))
}

const parseDimensions = (formatted: string): number => Number(/\((\d+)\)/.exec(formatted)?.[1] ?? NaN)

/**
 * Adds what a source needs to its table, idempotently: embedding columns, the partial indexes that
 * make pending counts cheap, the HNSW index, and the triggers that record pending work in the same
 * transaction as every insert, update of a watched column, and delete.
 */
export const ensureSource = (def: SourceDefinition) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const config = yield* AutoEmbedConfig
    yield* validate(def)
    const [schema, tableName] = def.table.includes(".") ? def.table.split(".") : ["public", def.table]
    const idColumn = def.idColumn ?? "id"
    const table = sql(`${schema}.${tableName}`)
    const found = yield* sql<{ id_type: string | null }>`
      SELECT format_type(a.atttypid, a.atttypmod) AS id_type
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ${schema} AND c.relname = ${tableName} AND a.attname = ${idColumn} AND NOT a.attisdropped`
    if (found.length === 0 || !found[0].id_type) {
      return yield* new SourceError({ message: `Source ${def.name}: table ${def.table} with column ${idColumn} does not exist` })
    }
    const dims = config.dimensions
    yield* sql.unsafe(`ALTER TABLE ${quote(schema)}.${quote(tableName)}
      ADD COLUMN IF NOT EXISTS embedding vector(${dims}),
      ADD COLUMN IF NOT EXISTS embedding_model text,
      ADD COLUMN IF NOT EXISTS embedding_hash text,
      ADD COLUMN IF NOT EXISTS embedded_at timestamptz`)
    const columnType = yield* sql<{ t: string }>`
      SELECT format_type(a.atttypid, a.atttypmod) AS t
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = ${schema} AND c.relname = ${tableName} AND a.attname = 'embedding' AND NOT a.attisdropped`
    const columnDims = parseDimensions(columnType[0]?.t ?? "")
    if (columnDims !== dims) {
      return yield* new DimensionMismatch({
        source: def.name,
        columnDimensions: columnDims,
        configuredDimensions: dims,
        message:
          `The embedding column of ${def.table} holds ${columnDims}-dimensional vectors but EMBEDDING_DIMENSIONS is ${dims}. ` +
          `Set EMBEDDING_DIMENSIONS=${columnDims}, or run \`pnpm cli migrate --reset-embeddings\` to drop the old vectors and re-embed at ${dims}.`
      })
    }
    const prefix = `autoembed_${def.name}`
    yield* sql`CREATE INDEX IF NOT EXISTS ${sql(`${prefix}_missing`)} ON ${table} (${sql(idColumn)}) WHERE embedding IS NULL`
    yield* sql`CREATE INDEX IF NOT EXISTS ${sql(`${prefix}_model`)} ON ${table} (embedding_model)`
    yield* createHnswIndexIfMissing(schema, tableName, `${prefix}_hnsw`, def.name)
    const watch = def.watchColumns.map(quote)
    const changed = def.watchColumns.map((c) => `OLD.${quote(c)} IS DISTINCT FROM NEW.${quote(c)}`).join(" OR ")
    const args = `${literal(def.name)}, ${literal(idColumn)}`
    const qualified = `${quote(schema)}.${quote(tableName)}`
    yield* sql.unsafe(`CREATE OR REPLACE TRIGGER ${quote(`${prefix}_ins`)} AFTER INSERT ON ${qualified}
      FOR EACH ROW EXECUTE FUNCTION autoembed_enqueue(${args})`)
    yield* sql.unsafe(`CREATE OR REPLACE TRIGGER ${quote(`${prefix}_upd`)} AFTER UPDATE OF ${watch.join(", ")} ON ${qualified}
      FOR EACH ROW WHEN (${changed}) EXECUTE FUNCTION autoembed_enqueue(${args})`)
    yield* sql.unsafe(`CREATE OR REPLACE TRIGGER ${quote(`${prefix}_del`)} AFTER DELETE ON ${qualified}
      FOR EACH ROW EXECUTE FUNCTION autoembed_enqueue(${args})`)
    const source: Source = {
      name: def.name,
      table: def.table,
      idColumn,
      text: def.text,
      watchColumns: def.watchColumns,
      titleColumn: def.titleColumn,
      contentColumn: def.contentColumn,
      topicColumn: def.topicColumn,
      createdAtColumn: def.createdAtColumn,
      tsvectorColumn: def.tsvectorColumn,
      idType: found[0].id_type,
      schema,
      tableName,
      indexName: `${prefix}_hnsw`
    }
    return source
  })

/**
 * The HNSW cosine index, as configured (vector or a halfvec expression index, m, ef_construction).
 * Only created when the table has none: changing an existing one is `pnpm cli reindex`.
 */
export const hnswIndexSql = (
  schema: string,
  tableName: string,
  indexName: string,
  options: { readonly kind: "vector" | "halfvec"; readonly dimensions: number; readonly m: number; readonly efConstruction: number },
  concurrently = false
): string => {
  const column = options.kind === "halfvec" ? `(embedding::halfvec(${options.dimensions})) halfvec_cosine_ops` : "embedding vector_cosine_ops"
  return `CREATE INDEX ${concurrently ? "CONCURRENTLY " : ""}IF NOT EXISTS ${quote(indexName)} ON ${quote(schema)}.${quote(tableName)}
    USING hnsw (${column}) WITH (m = ${Math.trunc(options.m)}, ef_construction = ${Math.trunc(options.efConstruction)})`
}

/** The validity and definition of these indexes (schema, name); absent ones have no row. */
export const findIndexes = (indexes: ReadonlyArray<{ readonly schema: string; readonly indexName: string }>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ schema: string; name: string; valid: boolean; definition: string }>`
      SELECT n.nspname AS schema, c.relname AS name, i.indisvalid AS valid, pg_get_indexdef(i.indexrelid) AS definition FROM pg_index i
      JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN unnest(${indexes.map((i) => i.schema)}::text[], ${indexes.map((i) => i.indexName)}::text[]) AS k(schema, name)
        ON n.nspname = k.schema AND c.relname = k.name`)

const createHnswIndexIfMissing = (schema: string, tableName: string, indexName: string, sourceName: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const config = yield* AutoEmbedConfig
    // A bulk load dropped this index on purpose; its run (or `pnpm cli reindex`) builds it at the end.
    const marked = yield* sql`SELECT 1 FROM autoembed_index_state WHERE source = ${sourceName}`
    if (marked.length > 0) return
    // An index left invalid by a failed concurrent build answers no query: replace it.
    const [existing] = yield* findIndexes([{ schema, indexName }])
    if (existing?.valid) return
    if (existing) yield* sql`DROP INDEX IF EXISTS ${sql(`${schema}.${indexName}`)}`
    yield* sql.unsafe(
      hnswIndexSql(schema, tableName, indexName, {
        kind: config.indexKind,
        dimensions: config.dimensions,
        m: config.hnswM,
        efConstruction: config.hnswEfConstruction
      })
    )
  })

/** Identifiers here are validated against a strict pattern first; quoting keeps case and keywords safe. */
export const quote = (identifierText: string): string => `"${identifierText.replace(/"/g, "\"\"")}"`
const literal = (text: string): string => `'${text.replace(/'/g, "''")}'`

export interface SourcesShape {
  readonly all: ReadonlyArray<Source>
  readonly names: ReadonlyArray<string>
  readonly get: (name: string) => Effect.Effect<Source, SourceError>
}

export class Sources extends Context.Tag("@autoembed/core/Sources")<Sources, SourcesShape>() {
  /** Built-in sources plus `custom`, each ensured in the database at start-up. */
  static readonly layer = (
    custom: ReadonlyArray<SourceDefinition> = [],
    options: { readonly builtins?: boolean } = {}
  ): Layer.Layer<Sources, SourceError | DimensionMismatch | SqlError, SqlClient.SqlClient | AutoEmbedConfig> =>
    Layer.effect(
      Sources,
      Effect.gen(function*() {
        const defs = [...(options.builtins === false ? [] : builtinSources), ...custom]
        const names = defs.map((d) => d.name)
        const dup = names.find((n, i) => names.indexOf(n) !== i)
        if (dup) return yield* new SourceError({ message: `Source ${dup} is registered twice` })
        const sql = yield* SqlClient.SqlClient
        // Several processes may start at once; DDL on the same table must not interleave.
        const all = yield* sql.withTransaction(
          Effect.zipRight(sql`SELECT pg_advisory_xact_lock(7215030001)`, Effect.forEach(defs, ensureSource))
        )
        const byName = new Map(all.map((s) => [s.name, s]))
        return {
          all,
          names,
          get: (name: string) => {
            const s = byName.get(name)
            return s
              ? Effect.succeed(s)
              : Effect.fail(new SourceError({ message: `Unknown entity type "${name}"; known: ${names.join(", ")}` }))
          }
        }
      })
    )
}
