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
