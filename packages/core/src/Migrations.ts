import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import { Database, DatabaseError, makeDatabaseLayer } from "./Database.js"
import { migrations } from "./migrations/index.js"

/**
 * Runs the schema migrations (idempotent; concurrent processes serialise on a table lock).
 * A server without pgvector gets a message that says how to install it.
 */
export const runMigrations = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const database = yield* Database
  if (database.kind === "postgres") {
    const available = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_available_extensions WHERE name = 'vector'`
    if ((available[0]?.n ?? 0) === 0) {
      return yield* new DatabaseError({
        message: `The PostgreSQL server at ${database.description} has no pgvector extension. Install it (on Debian: bash scripts/install-pgvector.sh), or unset DATABASE_URL to use the embedded database.`
      })
    }
  }
  return yield* Migrator.make({})({
    loader: Migrator.fromRecord(migrations),
    table: "autoembed_migrations"
  })
}).pipe(
  Effect.catchTags({
    SqlError: (e) => Effect.fail(new DatabaseError({ message: `Migration failed: ${e.message} (${String((e.cause as any)?.message ?? "")})`, cause: e })),
    MigrationError: (e) => Effect.fail(new DatabaseError({ message: `Migration failed: ${e.message}`, cause: e }))
  }),
  // The migrator turns a failing migration into a defect; it is still a database problem to report.
  Effect.catchAllDefect((defect) =>
    Effect.fail(new DatabaseError({ message: `Migration failed: ${String((defect as any)?.cause?.message ?? (defect as any)?.message ?? defect)}`, cause: defect }))
  ),
  Effect.withSpan("Migrations.run")
)

/** Runs the migrations when built; everything that reads tables is provided after it. */
export const MigrationsLive = Layer.effectDiscard(runMigrations)

/** A database with migrations applied, as a new layer on each call. */
export const makeMigratedDatabaseLayer = () => Layer.provideMerge(Layer.effectDiscard(runMigrations), makeDatabaseLayer())

/**
 * For a change of EMBEDDING_DIMENSIONS: drops every autoembed vector column and its HNSW index
 * (found in the catalog, so user-registered sources are included) and clears the embedding
 * metadata. The next start re-creates the columns at the configured size and every row is
 * missing, so the workers (or a backfill) embed them again. Returns the tables reset.
 */
export const resetVectorColumns = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const indexes = yield* sql<{ schema: string; table_name: string; index_name: string }>`
    SELECT n.nspname AS schema, t.relname AS table_name, c.relname AS index_name
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
    JOIN pg_namespace n ON n.oid = t.relnamespace
    WHERE c.relname LIKE 'autoembed\\_%\\_hnsw'`
  yield* sql.withTransaction(
    Effect.forEach(indexes, (ix) =>
      Effect.gen(function*() {
        const table = sql(`${ix.schema}.${ix.table_name}`)
        yield* sql`DROP INDEX IF EXISTS ${sql(`${ix.schema}.${ix.index_name}`)}`
        yield* sql`ALTER TABLE ${table} DROP COLUMN IF EXISTS embedding`
        yield* sql`UPDATE ${table} SET embedding_model = NULL, embedding_hash = NULL, embedded_at = NULL`
      }), { discard: true })
  )
  return indexes.map((i) => `${i.schema}.${i.table_name}`)
}).pipe(Effect.withSpan("Migrations.resetVectorColumns"))
