import * as Reactivity from "@effect/experimental/Reactivity"
import { makeCompiler } from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import type { Connection } from "@effect/sql/SqlConnection"
import { SqlError } from "@effect/sql/SqlError"
import { PGlite } from "@electric-sql/pglite"
import { vector } from "@electric-sql/pglite-pgvector"
import { Chunk, Effect, Scope, Stream } from "effect"
import * as Fs from "node:fs"

/**
 * An `@effect/sql` SqlClient over embedded PGlite (PostgreSQL in WebAssembly, with pgvector).
 *
 * PGlite is a single connection, so statements are serialised by a one-permit semaphore and a
 * transaction holds that permit from BEGIN to COMMIT: no other fiber's statement can land inside it.
 */
export interface PgliteClient {
  readonly sql: SqlClient.SqlClient
  readonly db: PGlite
}

const toSqlError = (cause: unknown, message = "Failed to execute statement") => new SqlError({ cause, message })

export const makePgliteClient = (dataDir: string): Effect.Effect<PgliteClient, SqlError, Scope.Scope> =>
  Effect.gen(function*() {
    const inMemory = dataDir === "memory://" || dataDir === ""
    if (!inMemory) {
      yield* Effect.try({
        try: () => Fs.mkdirSync(dataDir, { recursive: true }),
        catch: (cause) => toSqlError(cause, `Cannot create the embedded database directory ${dataDir}`)
      })
    }
    const db = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => PGlite.create({ dataDir: inMemory ? undefined : dataDir, extensions: { vector } }),
        catch: (cause) => toSqlError(cause, `Cannot open the embedded database at ${dataDir}`)
      }),
      (db) => Effect.promise(() => db.close()).pipe(Effect.ignore)
    )
    const permit = yield* Effect.makeSemaphore(1)

    const run = (sql: string, params: ReadonlyArray<unknown>, rowMode?: "array") =>
      Effect.tryPromise({
        try: () => db.query<any>(sql, params as Array<unknown>, rowMode ? { rowMode } : undefined),
        catch: (cause) => toSqlError(cause)
      })

    const makeConnection = (locked: boolean): Connection => {
      const guard = <A, E>(effect: Effect.Effect<A, E>) => (locked ? effect : permit.withPermits(1)(effect))
      const execute = (
        sql: string,
        params: ReadonlyArray<unknown>,
        transformRows: (<A extends object>(row: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined
      ) => guard(Effect.map(run(sql, params), (r) => (transformRows ? transformRows(r.rows) : r.rows)))
      return {
        execute,
        executeRaw: (sql, params) => guard(run(sql, params)),
        executeValues: (sql, params) => guard(Effect.map(run(sql, params, "array"), (r) => r.rows)),
        executeUnprepared: execute,
        // PGlite lives in this process: a query's rows are already in memory, so a stream is one chunk.
        executeStream: (sql, params, transformRows) =>
          Stream.fromIterableEffect(execute(sql, params, transformRows)).pipe(
            Stream.rechunk(128),
            Stream.mapChunks((c) => Chunk.fromIterable(c))
          )
      }
    }

    const transactionAcquirer = Effect.map(
      Effect.acquireRelease(permit.take(1), () => permit.release(1)),
      () => makeConnection(true)
    )

    const sql = yield* SqlClient.make({
      acquirer: Effect.succeed(makeConnection(false)),
      transactionAcquirer,
      compiler: makeCompiler(),
      spanAttributes: [["db.system.name", "postgresql"], ["db.namespace", "pglite"]]
    }).pipe(Effect.provide(Reactivity.layer))

    return { sql, db }
  })
