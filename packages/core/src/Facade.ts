import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import {
  Cause,
  Config,
  Effect,
  Exit,
  Layer,
  Logger,
  LogLevel,
  ManagedRuntime,
  Option,
  ParseResult,
  Predicate,
  Redacted,
  Schema
} from "effect"
import * as AutoEmbed from "./AutoEmbed.js"
import type { AutoEmbedConfigShape, ProviderChoice } from "./config/AutoEmbedConfig.js"
import { AutoEmbedConfig, effectLogLevel } from "./config/AutoEmbedConfig.js"
import type { SourceConfigInput } from "./config/SourceConfig.js"
import { Extraction } from "./knowledge/Extraction.js"
import { Backfill, type BackfillInput, type BackfillJob, type DryRunReport } from "./pipeline/Backfill.js"
import type { EmbeddingQueue } from "./pipeline/EmbeddingQueue.js"
import { PendingSignal } from "./pipeline/PendingSignal.js"
import { Status, type StatusReport } from "./pipeline/Status.js"
import { Search, type SearchInput, SearchRequest, type SearchResponse } from "./search/Search.js"
import { Sources } from "./sources/Sources.js"
import { causeChain } from "./storage/SqlFailure.js"
import { stateTables } from "./storage/State.js"

/** Options of `createAutoEmbed`: the common settings by name, everything else through `config`. */
export interface CreateAutoEmbedOptions {
  /** PostgreSQL connection string (postgres://...). Without it, the embedded PGlite database in `dataDir`. */
  readonly databaseUrl?: string
  /** Embedded database directory (default ".data/pglite"; "memory://" keeps it in memory). */
  readonly dataDir?: string
  /** "auto" (default), "ollama", "openai" or "local". */
  readonly provider?: ProviderChoice
  /** Model name; default is the provider's (mxbai-embed-large, text-embedding-3-small, local-hash-v1). */
  readonly model?: string
  /** Length of the vector columns (default 1024); must match the model. */
  readonly dimensions?: number
  /** Default http://localhost:11434. */
  readonly ollamaHost?: string
  readonly openaiApiKey?: string
  /** Any OpenAI-compatible endpoint. */
  readonly openaiBaseUrl?: string
  /** Your own tables to embed, by source name, in the configuration file's shape (see README). */
  readonly sources?: Readonly<Record<string, SourceConfigInput>>
  /** Keep the built-in knowledge model (messages, atoms, topics); default: on unless sources are declared. */
  readonly builtinSources?: boolean
  /** Run embedding workers in this process (default true). */
  readonly workers?: boolean
  /** Any other setting (batch size, lease, retries, index settings, ...); the named options above win. */
  readonly config?: Partial<AutoEmbedConfigShape>
  /**
   * Also read settings from process.env (DATABASE_URL, EMBEDDING_MODEL, ...). Default false: a library takes
   * only what it is given.
   */
  readonly env?: boolean
}

/**
 * A running autoembed, for code that does not use Effect. Every method returns a Promise and rejects with an
 * `AutoEmbedError`.
 */
export interface AutoEmbedClient {
  /**
   * The extraction hook: wake the queue for these built-in rows (they are already pending). Never rejects for
   * embedding problems.
   */
  readonly afterExtraction: (
    ids: { readonly atomIds?: ReadonlyArray<number | string>; readonly messageIds?: ReadonlyArray<number | string> }
  ) => Promise<void>
  /**
   * Rows of a source that changed: wakes the queue for them, and queues any that have no pending
   * row (written with triggers disabled, say) or whose earlier attempts failed. Ids not in the table are ignored.
   */
  readonly enqueue: (type: string, ids: ReadonlyArray<number | string>) => Promise<{ readonly queued: number }>
  readonly search: (request: SearchInput) => Promise<SearchResponse>
  /** Embeds every missing and stale row and resolves when done, with the job's final counts. */
  readonly backfill: (
    request?: Omit<BackfillInput, "dryRun">,
    options?: { readonly onProgress?: (job: BackfillJob) => void }
  ) => Promise<BackfillJob>
  /** What a backfill would do: per-source missing, stale and failed counts. */
  readonly dryRun: (request?: Omit<BackfillInput, "dryRun">) => Promise<DryRunReport>
  readonly status: () => Promise<StatusReport>
  /** Puts failed rows back in the queue. */
  readonly retryFailed: (types?: ReadonlyArray<string>) => Promise<{ readonly requeued: number }>
  /**
   * Runs one SQL statement ($1, $2, ... parameters) on autoembed's own connection and returns its rows.
   * The embedded database admits a single instance, so a service on it writes its rows here; on
   * PostgreSQL your own client works just as well.
   */
  readonly query: <Row extends object = Record<string, unknown>>(
    text: string,
    params?: ReadonlyArray<unknown>
  ) => Promise<ReadonlyArray<Row>>
  /** Drains the workers (claimed rows go back to the queue) and closes the database. Idempotent. */
  readonly close: () => Promise<void>
}

/** Why a call failed. `tag` is the error's kind (SearchInvalid, SourceError, ConfigurationError, ...). */
export class AutoEmbedError extends Schema.TaggedError<AutoEmbedError>()("AutoEmbedError", {
  message: Schema.String,
  tag: Schema.String,
  cause: Schema.optional(Schema.Unknown)
}) {}

type Services = AutoEmbed.AutoEmbedServices | EmbeddingQueue

const messageOf = (error: unknown): { message: string; tag: string } => {
  if (ParseResult.isParseError(error)) {
    const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
    return {
      tag: "InvalidRequest",
      message: issues.map((i) => (i.path.length > 0 ? `${i.path.join(".")}: ${i.message}` : i.message)).join("; ")
    }
  }
  const tag = Predicate.hasProperty(error, "_tag") && Predicate.isString(error._tag)
    ? error._tag
    : error instanceof Error
    ? error.name
    : "Error"
  const own = Predicate.hasProperty(error, "message") ? error.message : undefined
  let message = typeof own === "string" && own !== "" ? own : String(error)
  // SqlError's own message is generic ("Failed to execute statement"); the driver's reason is in its cause.
  const reason = error instanceof SqlError ? causeChain(error)[1]?.message : undefined
  if (typeof reason === "string") message = `${message}: ${reason}`
  return { message, tag }
}

const toError = (cause: Cause.Cause<unknown>, context: string): AutoEmbedError => {
  if (Cause.isInterruptedOnly(cause)) {
    return new AutoEmbedError({ message: `${context}: interrupted (the client was closed)`, tag: "Interrupted" })
  }
  const error = Cause.squash(cause)
  const { message, tag } = messageOf(error)
  return new AutoEmbedError({ message: `${context}: ${message}`, tag, cause: error })
}

/**
 * A library should be quiet: warnings and errors only, unless AUTOEMBED_LOG_LEVEL (with env) or config.logLevel
 * says otherwise.
 */
const logLevelLayer = (options: CreateAutoEmbedOptions) =>
  Layer.unwrapEffect(
    Effect.gen(function*() {
      const fromEnv = options.env === true
        ? yield* Config.option(Config.string("AUTOEMBED_LOG_LEVEL")).pipe(
          Effect.orElseSucceed(() => Option.none<string>())
        )
        : Option.none<string>()
      const name = options.config?.logLevel ?? Option.getOrElse(fromEnv, () => "warning")
      return Logger.minimumLogLevel(effectLogLevel(name, LogLevel.Warning))
    })
  )

const overrides = (options: CreateAutoEmbedOptions): Partial<AutoEmbedConfigShape> => {
  const named: { -readonly [K in keyof AutoEmbedConfigShape]?: AutoEmbedConfigShape[K] } = {}
  if (options.databaseUrl !== undefined) named.databaseUrl = Option.some(Redacted.make(options.databaseUrl))
  if (options.dataDir !== undefined) named.dataDir = options.dataDir
  if (options.provider !== undefined) named.provider = options.provider
  if (options.model !== undefined) named.model = Option.some(options.model)
  if (options.dimensions !== undefined) named.dimensions = options.dimensions
  if (options.ollamaHost !== undefined) named.ollamaHost = options.ollamaHost
  if (options.openaiApiKey !== undefined) named.openaiApiKey = Option.some(Redacted.make(options.openaiApiKey))
  if (options.openaiBaseUrl !== undefined) named.openaiBaseUrl = Option.some(options.openaiBaseUrl)
  return { ...options.config, ...named }
}

const validateOptions = (options: CreateAutoEmbedOptions): void => {
  if (options.databaseUrl !== undefined && !/^postgres(ql)?:\/\//.test(options.databaseUrl)) {
    throw new AutoEmbedError({
      message: "autoembed failed to start: databaseUrl must be a postgres:// or postgresql:// connection string",
      tag: "ConfigurationError"
    })
  }
  if (
    options.dimensions !== undefined &&
    !(Number.isInteger(options.dimensions) && options.dimensions >= 1 && options.dimensions <= 16000)
  ) {
    throw new AutoEmbedError({
      message:
        `autoembed failed to start: dimensions must be a whole number from 1 to 16000, got ${options.dimensions}`,
      tag: "ConfigurationError"
    })
  }
}

/**
 * Queues rows of one source that a caller says changed: inserts queue rows for ids with none and
 * revives failed ones, in one statement (ids not in the table are skipped by the join), then wakes
 * this process's workers and, through NOTIFY, other processes'.
 */
export const enqueueRows = Effect.fn("AutoEmbed.enqueue")(function*(type: string, ids: ReadonlyArray<number | string>) {
  const sql = yield* SqlClient.SqlClient
  const sources = yield* Sources
  const signal = yield* PendingSignal
  const config = yield* AutoEmbedConfig
  const source = yield* sources.get(type)
  const keys = [...new Set(ids.map(String))]
  if (keys.length === 0) return { queued: 0 }
  const rows = yield* sql<{ n: number }>`
    WITH ins AS (
      INSERT INTO ${stateTables(sql, config.stateSchema).queue} AS q (source, row_id)
      SELECT ${source.name}, t.${sql(source.idColumn)}::text FROM ${sql(`${source.schema}.${source.tableName}`)} t
      WHERE t.${sql(source.idColumn)} = ANY(${keys}::text[]::${sql.literal(source.idType)}[])
      ON CONFLICT (source, row_id) DO UPDATE SET
        failed_at = NULL, attempts = 0, next_attempt_at = now(), last_error = NULL
        WHERE q.failed_at IS NOT NULL
      RETURNING 1
    ) SELECT count(*)::int AS n FROM ins`
  const queued = rows[0]?.n ?? 0
  if (queued > 0) yield* sql`SELECT pg_notify('autoembed_pending', ${source.name})`
  yield* signal.notify(keys.map((rowId) => ({ source: source.name, rowId })))
  return { queued }
})

/**
 * Starts autoembed inside your service: migrates the database, adds embedding columns, index and
 * triggers to your `sources`, probes the provider, and (unless `workers: false`) starts the workers.
 * Rejects with one clear message when a setting is wrong. Call `close()` on shutdown.
 */
export const createAutoEmbed = async (options: CreateAutoEmbedOptions = {}): Promise<AutoEmbedClient> => {
  validateOptions(options)
  const layer = AutoEmbed.layer({
    env: options.env === true,
    config: overrides(options),
    sources: options.sources,
    builtinSources: options.builtinSources,
    workers: options.workers !== false
  }).pipe(Layer.provide(logLevelLayer(options)))
  const runtime = ManagedRuntime.make(layer as Layer.Layer<Services, AutoEmbed.AutoEmbedStartupError>)
  const built = await runtime.runPromiseExit(Effect.void)
  if (Exit.isFailure(built)) {
    await runtime.dispose().catch(() => undefined)
    const error = Cause.squash(built.cause)
    throw new AutoEmbedError({
      message: `autoembed failed to start: ${AutoEmbed.startupErrorMessage(error)}`,
      tag: messageOf(error).tag,
      cause: error
    })
  }

  let closing: Promise<void> | undefined
  const run = async <A>(context: string, effect: Effect.Effect<A, unknown, Services>): Promise<A> => {
    if (closing) throw new AutoEmbedError({ message: `${context}: the autoembed client is closed`, tag: "Closed" })
    const exit = await runtime.runPromiseExit(effect)
    if (Exit.isFailure(exit)) throw toError(exit.cause, context)
    return exit.value
  }

  return {
    afterExtraction: (ids) => run("afterExtraction", Effect.flatMap(Extraction, (e) => e.afterExtraction(ids))),
    enqueue: (type, ids) => run(`enqueue(${type})`, enqueueRows(type, ids)),
    search: (request) =>
      run(
        "search",
        Effect.flatMap(Schema.decodeUnknown(SearchRequest)(request), (decoded) =>
          Effect.flatMap(Search, (s) => s.search(decoded)))
      ),
    backfill: (request = {}, progress = {}) =>
      run(
        "backfill",
        Effect.flatMap(Backfill, (b) =>
          b.run({ ...request, dryRun: false }, (job) => Effect.sync(() => progress.onProgress?.(job))))
      ),
    dryRun: (request = {}) => run("dryRun", Effect.flatMap(Backfill, (b) => b.dryRun({ ...request, dryRun: true }))),
    status: () => run("status", Effect.flatMap(Status, (s) => s.report())),
    retryFailed: (types) => run("retryFailed", Effect.flatMap(Backfill, (b) => b.retryFailed(types))),
    query: <Row extends object>(text: string, params: ReadonlyArray<unknown> = []) =>
      run("query", Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<Row>(text, params as Array<any>))),
    close: () => (closing ??= runtime.dispose())
  }
}
