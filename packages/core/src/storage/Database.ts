import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { Context, Duration, Effect, Layer, Option, Redacted, Ref, Schema, Stream } from "effect"
import pg from "pg"
import { AutoEmbedConfig } from "../config/AutoEmbedConfig.js"
import { EXIT_CODES, type Failure, FailureTypeId } from "../Failure.js"
import { makePgliteClient } from "./PgliteClient.js"
import { causeChain, type CauseLink } from "./SqlFailure.js"

/**
 * The database cannot be used as configured: unreachable, refused, or missing a prerequisite. The
 * message names the setting to change; the driver's error is the cause (its SQLSTATE decides the
 * API's answer).
 */
export class DatabaseError extends Schema.TaggedError<DatabaseError>()("DatabaseError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Unknown)
}) implements Failure {
  get [FailureTypeId](): FailureTypeId {
    return FailureTypeId
  }
  get exitCode() {
    return EXIT_CODES.configuration
  }
}

export interface DatabaseShape {
  readonly kind: "pglite" | "postgres"
  /** Where the data lives, safe to log (no password). */
  readonly description: string
  /**
   * Notifications sent with NOTIFY (or pg_notify in a trigger) on `channel`. The stream fails when
   * its connection is lost (notifications may have been missed meanwhile); reconnecting is the
   * caller's choice, by retrying the stream.
   */
  readonly listen: (channel: string) => Stream.Stream<string, SqlError>
  /** Whether a LISTEN connection is up now (status shows whether wake-ups are live). */
  readonly listening: Effect.Effect<boolean>
}

/** The database in use. The `SqlClient` beside it is what all code queries through. */
export class Database extends Context.Tag("@autoembed/core/Database")<Database, DatabaseShape>() {}

/** node-postgres returns int8 as strings; ids here stay far below 2^53, so numbers keep both tiers alike. */
const pgTypes: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: "text" | "binary") => {
    if (oid === 20) return (v: string) => Number(v)
    if (oid === 1016) return pg.types.getTypeParser(1007 as any, "text")
    return pg.types.getTypeParser(oid as any, format as any)
  }) as any
}

export const describeUrl = (url: string): string => {
  try {
    const u = new URL(url)
    return `postgres://${u.hostname}:${u.port || "5432"}${u.pathname}`
  } catch {
    return "the server in DATABASE_URL"
  }
}

/** The first error code in a cause chain (ECONNREFUSED, a SQLSTATE), else the innermost message. */
const reasonOf = (chain: ReadonlyArray<CauseLink>): string => {
  const code = chain.find((c) => typeof c.code === "string" && c.code !== "")?.code
  if (typeof code === "string") return code
  const last = chain.at(-1)
  const m = String(last?.message || last || "")
  return m.length > 120 ? m.slice(0, 120) + "…" : m
}

/**
 * A LISTEN on its own connection. @effect/sql-pg's `listen` swallows the connection's errors, so a
 * database restart silenced wake-ups for the life of the process; this stream fails instead, and
 * the caller reconnects. TCP keep-alive finds a connection that died without a word.
 */
const listenOn = (url: string, channel: string, live: Ref.Ref<number>): Stream.Stream<string, SqlError> =>
  Stream.asyncPush<string, SqlError>((emit) =>
    Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const client = new pg.Client({
            connectionString: url,
            connectionTimeoutMillis: 5000,
            keepAlive: true,
            keepAliveInitialDelayMillis: 10_000,
            application_name: "autoembed-listen"
          })
          const lost = (cause: unknown) => emit.fail(new SqlError({ message: "The LISTEN connection was lost", cause }))
          client.on("error", lost)
          client.on("end", () => lost(new Error("connection ended")))
          client.on("notification", (msg) => {
            if (msg.channel === channel) emit.single(msg.payload ?? "")
          })
          try {
            await client.connect()
            await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`)
          } catch (e) {
            client.removeAllListeners()
            client.on("error", () => undefined)
            await client.end().catch(() => undefined)
            throw e
          }
          return client
        },
        catch: (cause) => new SqlError({ message: "Cannot open the LISTEN connection", cause })
      }).pipe(Effect.tap(() => Ref.update(live, (n) => n + 1))),
      (client) =>
        Effect.promise(() => {
          client.removeAllListeners()
          client.on("error", () => undefined)
          return client.end().catch(() => undefined)
        }).pipe(Effect.timeoutOption(1000), Effect.zipRight(Ref.update(live, (n) => n - 1)))
    )
  )

const postgres = (url: Redacted.Redacted<string>) => {
  const where = describeUrl(Redacted.value(url))
  return Layer.unwrapScoped(
    Effect.gen(function*() {
      const layer = PgClient.layer({
        url,
        types: pgTypes,
        connectTimeout: Duration.seconds(5),
        maxConnections: 10,
        applicationName: "autoembed"
      })
      const context = yield* Layer.build(layer).pipe(
        Effect.mapError((e) =>
          new DatabaseError({
            message: `Cannot connect to PostgreSQL at ${where} (${
              reasonOf(causeChain(e))
            }). Check DATABASE_URL, or unset it to use the embedded database.`,
            cause: e
          })
        )
      )
      const live = yield* Ref.make(0)
      const database: DatabaseShape = {
        kind: "postgres",
        description: where,
        listen: (channel) => listenOn(Redacted.value(url), channel, live),
        listening: Ref.get(live).pipe(Effect.map((n) => n > 0))
      }
      return Layer.succeedContext(Context.add(context, Database, database))
    })
  )
}

const embedded = (dataDir: string) =>
  Layer.scopedContext(
    Effect.gen(function*() {
      const { db, sql } = yield* makePgliteClient(dataDir).pipe(
        Effect.mapError((e) =>
          new DatabaseError({
            message: `${e.message} (${
              reasonOf(causeChain(e).slice(1))
            }). Check AUTOEMBED_DATA_DIR (another process may hold it open).`,
            cause: e
          })
        )
      )
      const database: DatabaseShape = {
        kind: "pglite",
        description: dataDir === "memory://" ? "embedded PGlite in memory" : `embedded PGlite at ${dataDir}`,
        listen: (channel) =>
          Stream.asyncPush<string, SqlError>((emit) =>
            Effect.acquireRelease(
              Effect.promise(() => db.listen(channel, (payload) => emit.single(payload))),
              (unlisten) => Effect.promise(() => unlisten()).pipe(Effect.ignore)
            )
          ),
        // In-process: nothing to lose.
        listening: Effect.succeed(true)
      }
      return Context.make(SqlClient.SqlClient, sql).pipe(Context.add(Database, database))
    })
  )

/**
 * PostgreSQL when DATABASE_URL is set, else the embedded PGlite database under AUTOEMBED_DATA_DIR.
 * A function, so that each call is a distinct layer (layers are memoised by identity).
 */
export const makeDatabaseLayer = (): Layer.Layer<Database | SqlClient.SqlClient, DatabaseError, AutoEmbedConfig> =>
  Layer.unwrapEffect(
    Effect.map(AutoEmbedConfig, (config) =>
      Option.match(config.databaseUrl, {
        onNone: () => embedded(config.dataDir),
        onSome: (url) => postgres(url)
      }))
  )

export const DatabaseLive = makeDatabaseLayer()
