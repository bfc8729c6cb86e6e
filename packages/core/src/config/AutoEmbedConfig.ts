import { Config, ConfigError, ConfigProvider, Context, Effect, Layer, LogLevel, Option, Redacted, Schema } from "effect"
import { EXIT_CODES, type Failure, FailureTypeId } from "../Failure.js"
import type { PriceTable } from "./Prices.js"
import { type DeclaredSources, loadConfigFile } from "./SourceConfig.js"

export type ProviderChoice = "auto" | "ollama" | "openai" | "local"
export type IndexKind = "vector" | "halfvec"

/** Everything autoembed reads from the environment, validated once at start-up. */
export interface AutoEmbedConfigShape {
  /** PostgreSQL connection string; when absent the embedded PGlite database is used. */
  readonly databaseUrl: Option.Option<Redacted.Redacted<string>>
  /** Where the embedded database lives on disk ("memory://" keeps it in memory). */
  readonly dataDir: string
  readonly provider: ProviderChoice
  /** Model name; None means the provider's default (mxbai-embed-large, text-embedding-3-small, local-hash-v1). */
  readonly model: Option.Option<string>
  /** Length of the vector columns. */
  readonly dimensions: number
  readonly ollamaHost: string
  readonly openaiApiKey: Option.Option<Redacted.Redacted<string>>
  readonly openaiBaseUrl: Option.Option<string>
  /** Timeout of one provider request. */
  readonly providerTimeoutMs: number
  readonly sampleData: boolean
  /**
   * Bound of each stage of a graceful shutdown: in-flight HTTP requests, then the workers' batches.
   * A process still running 5 s after its stages' bounds exits with code 1.
   */
  readonly drainTimeoutMs: number
  /** Texts per provider request. */
  readonly batchSize: number
  /** How long the batcher waits to fill a batch. */
  readonly batchWindowMs: number
  /** Provider requests in flight per process. */
  readonly concurrency: number
  /** Bound of the in-process queue (claimed rows waiting for a worker). */
  readonly queueCapacity: number
  /** Attempts before a row is marked failed (permanent errors and bad responses). */
  readonly maxAttempts: number
  /** Retries of one batch on transient errors before it is released for later. */
  readonly retries: number
  readonly retryBaseMs: number
  readonly retryMaxMs: number
  /** How long a provider's circuit stays open after a bad key or unknown model before one probe tries it. */
  readonly breakerMs: number
  /** How long a claim holds a row before another worker may take it. */
  readonly leaseSeconds: number
  /** How often the sweeper looks for pending rows nobody has queued. */
  readonly sweepIntervalMs: number
  /** How often an idle worker looks for claimable rows when no notification woke it. */
  readonly pollIntervalMs: number
  readonly efSearch: number
  /** Weight of the vector leg in hybrid search (the text leg has 1 − it); see Search's fusion. */
  readonly hybridVectorWeight: number
  readonly hnswM: number
  readonly hnswEfConstruction: number
  readonly indexKind: IndexKind
  /** Pending rows above which a backfill takes the bulk path (drop index, load, rebuild). */
  readonly bulkThreshold: number
  /**
   * Upper bound of maintenance_work_mem for an HNSW build on the server (the build takes what the graph needs,
   * up to this).
   */
  readonly indexBuildMemoryMb: number
  /** max_parallel_maintenance_workers for a build; None keeps the server's own setting. */
  readonly indexBuildWorkers: Option.Option<number>
  readonly logLevel: string
  /** The schema that holds autoembed's own state (queue, jobs, bookkeeping, internal vectors). */
  readonly stateSchema: string
  /** Sources declared in the configuration file (or by a library caller). */
  readonly sources: DeclaredSources
  /** The built-in knowledge model (topics, messages, atoms) is installed and served. */
  readonly builtin: boolean
  /** The configuration file read, if any. */
  readonly configFile: Option.Option<string>
  /** USD per 1M input tokens by model key or name, from the configuration file, over `DEFAULT_PRICES`. */
  readonly prices: PriceTable
}

/** A setting builder (also used by the server's own settings in @autoembed/api). */
export const positiveInt = (name: string, fallback: number, max = Number.MAX_SAFE_INTEGER) =>
  Config.integer(name).pipe(
    Config.withDefault(fallback),
    Config.validate({
      message: `${name} must be a whole number from 1 to ${max}`,
      validation: (n) => n >= 1 && n <= max
    })
  )

/** A setting builder (also used by the server's own settings in @autoembed/api). */
export const nonNegativeInt = (name: string, fallback: number) =>
  Config.integer(name).pipe(
    Config.withDefault(fallback),
    Config.validate({ message: `${name} must be a whole number of 0 or more`, validation: (n) => n >= 0 })
  )

const optionalString = (name: string) =>
  Config.string(name).pipe(
    Config.option,
    Config.map(Option.filter((s) => s.trim() !== ""))
  )

/** A setting builder (also used by the server's own settings in @autoembed/api). */
export const optionalSecret = (name: string) =>
  Config.redacted(name).pipe(
    Config.option,
    Config.map(Option.filter((s) => Redacted.value(s).trim() !== ""))
  )

const url = (name: string, fallback: string) =>
  Config.string(name).pipe(
    Config.withDefault(fallback),
    Config.validate({
      message: `${name} must be an http(s) URL such as http://localhost:11434`,
      validation: (s) => {
        try {
          const u = new URL(s)
          return u.protocol === "http:" || u.protocol === "https:"
        } catch {
          return false
        }
      }
    })
  )

/** AUTOEMBED_LOG_LEVEL's values and the Effect log level of each: the one mapping the server, CLI and library use. */
export const LOG_LEVELS = {
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  none: LogLevel.None
} as const

export type LogLevelName = keyof typeof LOG_LEVELS

/** AUTOEMBED_LOG_LEVEL on its own: a process sets up its logger before the rest of the configuration is read. */
export const logLevelSetting: Config.Config<LogLevelName> = Config.literal(
  ...(Object.keys(LOG_LEVELS) as Array<LogLevelName>)
)("AUTOEMBED_LOG_LEVEL").pipe(Config.withDefault("info" as const))

/** The Effect log level named by `name` (an AUTOEMBED_LOG_LEVEL value), or `fallback` for anything else. */
export const effectLogLevel = (name: string | undefined, fallback: LogLevel.LogLevel = LogLevel.Info) =>
  name !== undefined && name in LOG_LEVELS ? LOG_LEVELS[name as LogLevelName] : fallback

/**
 * AUTOEMBED_DRAIN_TIMEOUT_MS on its own: the CLI arms its shutdown bound before a command has read
 * the whole configuration.
 */
export const drainTimeoutSetting = positiveInt("AUTOEMBED_DRAIN_TIMEOUT_MS", 15_000, 600_000)

export const autoEmbedConfig: Config.Config<AutoEmbedConfigShape> = Config.all({
  databaseUrl: optionalSecret("DATABASE_URL").pipe(
    Config.validate({
      message: "DATABASE_URL must be a postgres:// or postgresql:// connection string",
      validation: (o) =>
        Option.match(o, {
          onNone: () => true,
          onSome: (s) => /^postgres(ql)?:\/\//.test(Redacted.value(s))
        })
    })
  ),
  dataDir: Config.string("AUTOEMBED_DATA_DIR").pipe(Config.withDefault(".data/pglite")),
  provider: Config.literal("auto", "ollama", "openai", "local")("EMBEDDING_PROVIDER").pipe(
    Config.withDefault("auto" as const)
  ),
  model: optionalString("EMBEDDING_MODEL"),
  dimensions: positiveInt("EMBEDDING_DIMENSIONS", 1024, 16000),
  ollamaHost: url("OLLAMA_HOST", "http://localhost:11434"),
  openaiApiKey: optionalSecret("OPENAI_API_KEY"),
  openaiBaseUrl: optionalString("OPENAI_BASE_URL"),
  providerTimeoutMs: positiveInt("AUTOEMBED_PROVIDER_TIMEOUT_MS", 30_000),
  sampleData: Config.boolean("AUTOEMBED_SAMPLE_DATA").pipe(Config.withDefault(true)),
  drainTimeoutMs: drainTimeoutSetting,
  batchSize: positiveInt("AUTOEMBED_BATCH_SIZE", 64, 2048),
  batchWindowMs: nonNegativeInt("AUTOEMBED_BATCH_WINDOW_MS", 20),
  concurrency: positiveInt("AUTOEMBED_CONCURRENCY", 4, 256),
  queueCapacity: positiveInt("AUTOEMBED_QUEUE_CAPACITY", 1000, 1_000_000),
  maxAttempts: positiveInt("AUTOEMBED_MAX_ATTEMPTS", 5, 1000),
  retries: nonNegativeInt("AUTOEMBED_RETRIES", 6),
  retryBaseMs: positiveInt("AUTOEMBED_RETRY_BASE_MS", 200),
  retryMaxMs: positiveInt("AUTOEMBED_RETRY_MAX_MS", 30_000),
  breakerMs: positiveInt("AUTOEMBED_BREAKER_MS", 30_000),
  leaseSeconds: positiveInt("AUTOEMBED_LEASE_SECONDS", 120),
  sweepIntervalMs: positiveInt("AUTOEMBED_SWEEP_INTERVAL_MS", 10_000),
  pollIntervalMs: positiveInt("AUTOEMBED_POLL_INTERVAL_MS", 1000, 600_000),
  efSearch: positiveInt("AUTOEMBED_EF_SEARCH", 100, 1000),
  hybridVectorWeight: Config.number("AUTOEMBED_HYBRID_VECTOR_WEIGHT").pipe(
    Config.withDefault(0.4),
    Config.validate({
      message: "AUTOEMBED_HYBRID_VECTOR_WEIGHT must be a number from 0 to 1",
      validation: (n) => n >= 0 && n <= 1
    })
  ),
  hnswM: positiveInt("AUTOEMBED_HNSW_M", 16, 100).pipe(
    Config.validate({ message: "AUTOEMBED_HNSW_M must be from 2 to 100", validation: (n) => n >= 2 })
  ),
  hnswEfConstruction: positiveInt("AUTOEMBED_HNSW_EF_CONSTRUCTION", 64, 1000).pipe(
    Config.validate({ message: "AUTOEMBED_HNSW_EF_CONSTRUCTION must be from 4 to 1000", validation: (n) => n >= 4 })
  ),
  indexKind: Config.literal("vector", "halfvec")("AUTOEMBED_INDEX_TYPE").pipe(
    Config.withDefault("vector" as const)
  ),
  bulkThreshold: positiveInt("AUTOEMBED_BULK_THRESHOLD", 20_000),
  indexBuildMemoryMb: positiveInt("AUTOEMBED_INDEX_BUILD_MEMORY_MB", 1024, 1_048_576).pipe(
    Config.validate({
      message: "AUTOEMBED_INDEX_BUILD_MEMORY_MB must be from 16 to 1048576 (megabytes)",
      validation: (n) => n >= 16
    })
  ),
  indexBuildWorkers: Config.option(Config.integer("AUTOEMBED_INDEX_BUILD_WORKERS")).pipe(
    Config.validate({
      message: "AUTOEMBED_INDEX_BUILD_WORKERS must be a whole number from 0 to 64",
      validation: (o) => Option.match(o, { onNone: () => true, onSome: (n) => n >= 0 && n <= 64 })
    })
  ),
  logLevel: logLevelSetting,
  stateSchema: Config.string("AUTOEMBED_SCHEMA").pipe(
    Config.withDefault("autoembed"),
    Config.validate({
      message: "AUTOEMBED_SCHEMA must be a lowercase schema name (letters, digits, _), at most 63 characters",
      validation: (s) => /^[a-z_][a-z0-9_]{0,62}$/.test(s)
    })
  ),
  sources: Config.succeed<DeclaredSources>({}),
  builtin: Config.succeed(true),
  configFile: Config.succeed(Option.none<string>()),
  prices: Config.succeed<PriceTable>({})
}).pipe(
  Config.validate({
    message: "AUTOEMBED_INDEX_TYPE=vector supports at most 2000 dimensions; " +
      "use halfvec (up to 4000) or fewer EMBEDDING_DIMENSIONS",
    validation: (c) => c.dimensions <= (c.indexKind === "vector" ? 2000 : 4000)
  })
)

/**
 * The environment's settings plus the configuration file (AUTOEMBED_CONFIG, or autoembed.config.json
 * / .yaml / .yml in the working directory). The built-in knowledge model is on unless the file
 * declares sources; AUTOEMBED_BUILTIN, then the file's `builtin`, override that.
 */
const withConfigFile = Effect.gen(function*() {
  const settings = yield* autoEmbedConfig
  const explicit = yield* Config.option(Config.string("AUTOEMBED_CONFIG"))
  const builtinEnv = yield* Config.option(Config.boolean("AUTOEMBED_BUILTIN"))
  const loaded = yield* loadConfigFile(Option.getOrUndefined(explicit)).pipe(
    Effect.mapError((e) => new ConfigurationError({ message: e.message }))
  )
  const sources = loaded?.file.sources ?? {}
  const builtin = Option.getOrElse(builtinEnv, () => loaded?.file.builtin ?? Object.keys(sources).length === 0)
  const prices = loaded?.file.prices ?? {}
  return { ...settings, sources, builtin, prices, configFile: Option.fromNullable(loaded?.path) }
})

/** A configuration mistake, with the setting to change in its message. */
export class ConfigurationError extends Schema.TaggedError<ConfigurationError>()("ConfigurationError", {
  message: Schema.String
}) implements Failure {
  get [FailureTypeId](): FailureTypeId {
    return FailureTypeId
  }
  get exitCode() {
    return EXIT_CODES.configuration
  }
}

/** The environment and the configuration file, validated; a mistake names the setting or the file and key. */
export const readConfig: Effect.Effect<AutoEmbedConfigShape, ConfigurationError> = Effect.catchAll(
  withConfigFile,
  (e) =>
    Effect.fail(
      e instanceof ConfigurationError
        ? e
        : new ConfigurationError({ message: formatConfigError(e as ConfigError.ConfigError) })
    )
)

/** Reads settings outside AutoEmbedConfig (the server's, the log format) with the same error: one line per setting. */
export const readSettings = <A>(config: Config.Config<A>): Effect.Effect<A, ConfigurationError> =>
  Effect.mapError(config, (e) => new ConfigurationError({ message: formatConfigError(e) }))

/** One line per problem, each naming the environment variable. */
export const formatConfigError = (error: ConfigError.ConfigError): string => {
  const lines: Array<string> = []
  const walk = (e: ConfigError.ConfigError): void => {
    switch (e._op) {
      case "And":
      case "Or":
        walk(e.left)
        walk(e.right)
        return
      case "InvalidData":
      case "MissingData":
      case "SourceUnavailable":
      case "Unsupported": {
        const name = e.path.join("_")
        const msg = e.message.replace(/^Expected .*? to be (a |an )?/, "must be ").replace(/\s+$/, "")
        // Validation messages name their setting themselves; parse errors carry it in the path.
        lines.push(name === "" || msg.startsWith(name) ? `Invalid setting: ${msg}` : `Invalid setting ${name}: ${msg}`)
        return
      }
    }
  }
  walk(error)
  return [...new Set(lines)].join("; ")
}

export class AutoEmbedConfig extends Context.Tag("@autoembed/core/AutoEmbedConfig")<
  AutoEmbedConfig,
  AutoEmbedConfigShape
>() {
  /** Reads the environment (or the current ConfigProvider); a mistake fails with a message naming the setting. */
  static readonly layer: Layer.Layer<AutoEmbedConfig, ConfigurationError> = Layer.effect(AutoEmbedConfig, readConfig)

  /** A fixed configuration (tests, library users): starts from the defaults and overrides fields. */
  static readonly make = (
    overrides: Partial<AutoEmbedConfigShape> = {}
  ): Layer.Layer<AutoEmbedConfig, ConfigurationError> =>
    Layer.effect(
      AutoEmbedConfig,
      Effect.map(
        Effect.mapError(
          Effect.withConfigProvider(autoEmbedConfig, emptyProvider),
          (e) => new ConfigurationError({ message: formatConfigError(e) })
        ),
        (defaults) => ({ ...defaults, ...overrides })
      )
    )
}

const emptyProvider = ConfigProvider.fromMap(new Map())
