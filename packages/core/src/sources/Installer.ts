import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"
import type { IndexKind } from "../config/AutoEmbedConfig.js"
import { DimensionMismatch } from "../providers/EmbeddingProvider.js"
import { DatabaseError } from "../storage/Database.js"
import { migrations } from "../storage/migrations/index.js"
import { sqlReason } from "../storage/SqlFailure.js"
import { migrationsTable, stateTables } from "../storage/State.js"
import { type Source, type VectorIndexSpec } from "./SourceCatalog.js"

export interface IndexSettings {
  readonly kind: IndexKind
  readonly dimensions: number
  readonly m: number
  readonly efConstruction: number
}

/**
 * Before anything is created: pgvector must be installed or installable by this role, and the role
 * must be able to create (or use) autoembed's schema. One line naming the fix, database untouched.
 */
export const checkPrerequisites = (schema: string, where: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const [r] = yield* sql<{
      installed: string | null
      available: boolean
      superuser: boolean
      role: string
      database: string
      schema_exists: boolean
      can_create: boolean
      can_use_schema: boolean | null
    }>`
      SELECT (SELECT extversion FROM pg_extension WHERE extname = 'vector') AS installed,
        EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') AS available,
        coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false) AS superuser,
        current_user::text AS role, current_database()::text AS database,
        EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = ${schema}) AS schema_exists,
        has_database_privilege(current_database(), 'CREATE') AS can_create,
        (SELECT has_schema_privilege(${schema}, 'CREATE')
          WHERE EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = ${schema})) AS can_use_schema`
    if (r.installed === null && !r.available) {
      return yield* new DatabaseError({
        message: `The PostgreSQL server at ${where} has no pgvector extension. ` +
          "Install it (on Debian: bash scripts/install-pgvector.sh), " +
          "or unset DATABASE_URL to use the embedded database."
      })
    }
    if (r.installed === null && !r.superuser) {
      return yield* new DatabaseError({
        message: `pgvector is not enabled in database ${r.database} and role ${r.role} may not enable it: ` +
          `run CREATE EXTENSION vector; as a superuser in ${r.database}, then start again.`
      })
    }
    if (!r.schema_exists && !r.can_create) {
      return yield* new DatabaseError({
        message: `Role ${r.role} may not create schema ${schema} in database ${r.database}: ` +
          `GRANT CREATE ON DATABASE ${r.database} TO ${r.role}, ` +
          `create it for the role (CREATE SCHEMA ${schema} AUTHORIZATION ${r.role}), ` +
          "or set AUTOEMBED_SCHEMA to a schema it owns."
      })
    }
    if (r.schema_exists && r.can_use_schema === false) {
      return yield* new DatabaseError({
        message: `Role ${r.role} may not create objects in schema ${schema}: ` +
          `GRANT CREATE, USAGE ON SCHEMA ${schema} TO ${r.role}, or set AUTOEMBED_SCHEMA to another schema.`
      })
    }
  })

/**
 * The extension, autoembed's schema and its migrations (idempotent). Not inside a caller's
 * transaction: the migrator runs its own, locking its table so concurrent processes take turns.
 */
export const installState = (schema: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.withTransaction(
      Effect.zipRight(
        sql`SELECT pg_advisory_xact_lock(7215030001)`,
        Effect.zipRight(sql`CREATE EXTENSION IF NOT EXISTS vector`, sql`CREATE SCHEMA IF NOT EXISTS ${sql(schema)}`)
      )
    )
    yield* Migrator.make({})({ loader: Migrator.fromRecord(migrations(schema)), table: migrationsTable(schema) }).pipe(
      // The migrator turns a failing migration into a defect; it is still a database problem to report.
      Effect.catchAllDefect((defect) =>
        Effect.fail(new DatabaseError({ message: `Migration failed: ${sqlReason(defect)}`, cause: defect }))
      )
    )
  }).pipe(
    Effect.catchTags({
      SqlError: (e) =>
        Effect.fail(new DatabaseError({ message: `Installing autoembed's schema failed: ${sqlReason(e)}`, cause: e })),
      MigrationError: (e) => Effect.fail(new DatabaseError({ message: `Migration failed: ${e.message}`, cause: e }))
    })
  )

const triggerNames = (source: Source) => ({
  insert: `autoembed_${source.name}_ins`,
  update: `autoembed_${source.name}_upd`,
  delete: `autoembed_${source.name}_del`
})

/**
 * Installs one source: the table of its vectors when it has no vector column, the triggers that
 * record pending work in the same transaction as every insert, update of a watched column, and
 * delete, and its row in the registry. Idempotent.
 */
export const installSource = (source: Source, schema: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = stateTables(sql, schema)
    const table = sql(`${source.schema}.${source.tableName}`)
    if (source.storage.kind === "internal") {
      yield* sql`CREATE TABLE IF NOT EXISTS ${t.vectors(source.name)} (
        id ${sql.literal(source.idType)} PRIMARY KEY,
        embedding ${sql.literal(`vector(${Math.trunc(source.dimensions)})`)} NOT NULL
      )`
      const [found] = yield* sql<{ t: string }>`
        SELECT format_type(a.atttypid, a.atttypmod) AS t FROM pg_attribute a
        WHERE a.attrelid = ${`${schema}.${source.storage.table}`}::regclass
          AND a.attname = 'embedding' AND NOT a.attisdropped`
      const dims = Number(/\((\d+)\)/.exec(found?.t ?? "")?.[1] ?? NaN)
      if (dims !== source.dimensions) {
        return yield* new DimensionMismatch({
          source: source.name,
          actual: dims,
          expected: source.dimensions,
          message: `${schema}.${source.storage.table} holds ${dims}-dimensional vectors of source "${source.name}" ` +
            `but EMBEDDING_DIMENSIONS is ${source.dimensions}. Set EMBEDDING_DIMENSIONS=${dims}, ` +
            "or run `pnpm cli migrate --reset-embeddings` to drop those vectors " +
            `and re-embed at ${source.dimensions}.`
        })
      }
    }
    const names = triggerNames(source)
    const args = source.storage.kind === "internal"
      ? sql`${sql(source.name)}, ${sql(source.idColumn)}, ${sql(source.storage.table)}`
      : sql`${sql(source.name)}, ${sql(source.idColumn)}`
    const watched = sql.csv(source.watchColumns.map((c) => sql`${sql(c)}`))
    const changed = sql.or(source.watchColumns.map((c) => sql`OLD.${sql(c)} IS DISTINCT FROM NEW.${sql(c)}`))
    yield* sql`CREATE OR REPLACE TRIGGER ${sql(names.insert)} AFTER INSERT ON ${table}
      FOR EACH ROW EXECUTE FUNCTION ${t.enqueue}(${args})`
    yield* sql`CREATE OR REPLACE TRIGGER ${sql(names.update)} AFTER UPDATE OF ${watched} ON ${table}
      FOR EACH ROW WHEN (${changed}) EXECUTE FUNCTION ${t.enqueue}(${args})`
    yield* sql`CREATE OR REPLACE TRIGGER ${sql(names.delete)} AFTER DELETE ON ${table}
      FOR EACH ROW EXECUTE FUNCTION ${t.enqueue}(${args})`
    yield* sql`
      INSERT INTO ${t.registry} (name, table_schema, table_name, id_column, storage, vector_column, dimensions,
        index_schema, index_name, index_owned)
      VALUES (${source.name}, ${source.schema}, ${source.tableName}, ${source.idColumn}, ${source.storage.kind},
        ${
      source.storage.kind === "column" ? source.storage.column : null
    }, ${source.dimensions}, ${source.index.schema}, ${source.index.name}, ${source.index.owned})
      ON CONFLICT (name) DO UPDATE SET table_schema = EXCLUDED.table_schema, table_name = EXCLUDED.table_name,
        id_column = EXCLUDED.id_column, storage = EXCLUDED.storage, vector_column = EXCLUDED.vector_column,
        dimensions = EXCLUDED.dimensions, index_schema = EXCLUDED.index_schema,
        index_name = EXCLUDED.index_name, index_owned = EXCLUDED.index_owned, updated_at = now()`
  })

/**
 * Removes what `installSource` made for an embedding set that is dropped: its triggers, its vector
 * table (or the index autoembed owns on the user's column, whose vectors stay the user's), and its
 * registry row. Run inside the caller's transaction.
 */
export const removeSetObjects = (target: Source, schema: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = stateTables(sql, schema)
    const table = sql(`${target.schema}.${target.tableName}`)
    const names = triggerNames(target)
    for (const name of [names.insert, names.update, names.delete]) {
      yield* sql`DROP TRIGGER IF EXISTS ${sql(name)} ON ${table}`
    }
    if (target.storage.kind === "internal") yield* sql`DROP TABLE IF EXISTS ${t.vectors(target.name)}`
    else if (target.index.owned) yield* sql`DROP INDEX IF EXISTS ${sql(`${target.index.schema}.${target.index.name}`)}`
    yield* sql`DELETE FROM ${t.registry} WHERE name = ${target.name}`
  })

export interface InstalledTrigger {
  readonly name: string
  readonly schema: string
  readonly table: string
  /** The source name it records pending work for. */
  readonly source: string
  /** A trigger of autoembed 0.1 (function public.autoembed_enqueue), replaced by this version's. */
  readonly legacy: boolean
}

/** Every trigger that calls autoembed's function (or 0.1's), wherever it is. */
export const installedTriggers = (schema: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<
      { name: string; schema: string; table_name: string; args: string; function_schema: string; function_name: string }
    >`
      SELECT tg.tgname AS name, n.nspname AS schema, c.relname AS table_name, encode(tg.tgargs, 'escape') AS args,
        pn.nspname AS function_schema, p.proname AS function_name
      FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_proc p ON p.oid = tg.tgfoid JOIN pg_namespace pn ON pn.oid = p.pronamespace
      WHERE NOT tg.tgisinternal
        AND ((pn.nspname = ${schema} AND p.proname = 'enqueue') OR p.proname = 'autoembed_enqueue')`
    return rows.map((r): InstalledTrigger => ({
      name: r.name,
      schema: r.schema,
      table: r.table_name,
      // tgargs holds the arguments NUL-terminated; 'escape' encoding shows NUL as \000.
      source: r.args.split("\\000")[0],
      legacy: r.function_name === "autoembed_enqueue"
    }))
  })

/** Drops the triggers of sources no longer declared (or declared on another table); returns them. */
export const removeStaleTriggers = (sources: ReadonlyArray<Source>, schema: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const current = new Set(sources.map((s) => `${s.name}\u0000${s.schema}\u0000${s.tableName}`))
    // A 0.1 trigger still here was not replaced by a trigger of the same name: its source is gone.
    const stale = (yield* installedTriggers(schema)).filter((tg) =>
      tg.legacy || !current.has(`${tg.source}\u0000${tg.schema}\u0000${tg.table}`)
    )
    for (const tg of stale) yield* sql`DROP TRIGGER IF EXISTS ${sql(tg.name)} ON ${sql(`${tg.schema}.${tg.table}`)}`
    const names = sources.map((s) => s.name)
    yield* sql`DELETE FROM ${stateTables(sql, schema).registry} WHERE NOT (name = ANY(${names}::text[]))`
    return stale
  })

/** The HNSW cosine index, as configured (vector or a halfvec expression index, m, ef_construction). */
export const hnswIndexSql = (
  sql: SqlClient.SqlClient,
  spec: VectorIndexSpec,
  settings: IndexSettings,
  options: { readonly concurrently?: boolean; readonly name?: string } = {}
) => {
  const column = settings.kind === "halfvec"
    ? sql`(${sql(spec.column)}::${sql.literal(`halfvec(${Math.trunc(settings.dimensions)})`)}) halfvec_cosine_ops`
    : sql`${sql(spec.column)} vector_cosine_ops`
  return sql`CREATE INDEX ${sql.literal(options.concurrently ? "CONCURRENTLY " : "")}IF NOT EXISTS ${
    sql(options.name ?? spec.name)
  }
    ON ${sql(`${spec.schema}.${spec.table}`)} USING hnsw (${column})
    WITH (m = ${sql.literal(String(Math.trunc(settings.m)))}, ef_construction = ${
    sql.literal(String(Math.trunc(settings.efConstruction)))
  })`
}

/** The validity and definition of these indexes (schema, name); absent ones have no row. */
export const findIndexes = (indexes: ReadonlyArray<{ readonly schema: string; readonly name: string }>) =>
  Effect.flatMap(
    SqlClient.SqlClient,
    (sql) =>
      sql<{ schema: string; name: string; valid: boolean; definition: string }>`
      SELECT n.nspname AS schema, c.relname AS name, i.indisvalid AS valid, pg_get_indexdef(i.indexrelid) AS definition
      FROM pg_index i
      JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN unnest(${indexes.map((i) => i.schema)}::text[], ${indexes.map((i) => i.name)}::text[]) AS k(schema, name)
        ON n.nspname = k.schema AND c.relname = k.name`
  )

/**
 * Builds the indexes autoembed owns that are missing (or left invalid by a failed concurrent build),
 * CONCURRENTLY on a server so the user's writes go on; a source under a bulk load is left alone.
 * Changing an existing index is `pnpm cli reindex`.
 */
export const ensureIndexes = (
  sources: ReadonlyArray<Source>,
  schema: string,
  settings: (s: Source) => IndexSettings,
  server: boolean
) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const wanted = sources.filter((s) => s.index.owned && s.index.create)
    if (wanted.length === 0) return
    const marks = new Set(
      (yield* sql<{ source: string }>`SELECT source FROM ${stateTables(sql, schema).indexState}`).map((m) => m.source)
    )
    const existing = yield* findIndexes(wanted.map((s) => s.index))
    for (const s of wanted) {
      if (marks.has(s.name)) continue
      const found = existing.find((e) => e.schema === s.index.schema && e.name === s.index.name)
      if (found?.valid) continue
      const qualified = sql(`${s.index.schema}.${s.index.name}`)
      if (found) {
        yield* (server
          ? sql`DROP INDEX CONCURRENTLY IF EXISTS ${qualified}`
          : sql`DROP INDEX IF EXISTS ${qualified}`)
      }
      yield* hnswIndexSql(sql, s.index, settings(s), { concurrently: server })
    }
  })

/**
 * Removes every trace of autoembed: its triggers (this version's and 0.1's), the indexes it owns on
 * user tables, its trigger functions and its schema. The user's tables, and the vectors in their
 * own columns, stay as they are. Returns what was removed.
 */
export const uninstall = (schema: string, server: boolean) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const triggers = yield* installedTriggers(schema)
    const hasSchema =
      (yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = ${schema}`)[0].n > 0
    const hasRegistry = hasSchema &&
      (yield* sql<{ r: string | null }>`SELECT to_regclass(${`${schema}.sources`})::text AS r`)[0].r !== null
    const owned = hasRegistry
      ? yield* sql<{ index_schema: string; index_name: string }>`
          SELECT index_schema, index_name FROM ${
        stateTables(sql, schema).registry
      } WHERE index_owned AND index_schema <> ${schema}`
      : []
    for (const tg of triggers) yield* sql`DROP TRIGGER IF EXISTS ${sql(tg.name)} ON ${sql(`${tg.schema}.${tg.table}`)}`
    for (const ix of owned) {
      const name = sql(`${ix.index_schema}.${ix.index_name}`)
      yield* (server ? sql`DROP INDEX CONCURRENTLY IF EXISTS ${name}` : sql`DROP INDEX IF EXISTS ${name}`)
    }
    yield* sql`DROP SCHEMA IF EXISTS ${sql(schema)} CASCADE`
    // 0.1 kept its function beside the user's tables.
    const legacy = yield* sql<{ schema: string }>`
      SELECT n.nspname AS schema FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
      WHERE p.proname = 'autoembed_enqueue'`
    for (const l of legacy) yield* sql`DROP FUNCTION IF EXISTS ${sql(`${l.schema}.autoembed_enqueue`)}()`
    return {
      triggers: triggers.length,
      indexes: owned.map((i) => `${i.index_schema}.${i.index_name}`),
      schema: hasSchema ? schema : null
    }
  })
