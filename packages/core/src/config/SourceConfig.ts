import { Effect, Either, ParseResult, Schema } from "effect"
import { existsSync, readFileSync } from "node:fs"
import * as Path from "node:path"
import { parse as parseYaml } from "yaml"
import { EXIT_CODES, type Failure, FailureTypeId } from "../Failure.js"
import { AddSetRequest, SetName } from "../sets/SetSchemas.js"
import { PricesConfig } from "./Prices.js"

/**
 * What a configuration file (or a library caller) declares about one table to embed. The file is
 * the one source of truth: the server, the CLI, the workers, the Docker image and
 * `createAutoEmbed` read the same shape and validate it the same way.
 */
const Name = (what: string) =>
  Schema.String.pipe(
    Schema.minLength(1, { message: () => `${what} must not be empty` }),
    Schema.maxLength(63, { message: () => `${what} must be at most 63 characters (a PostgreSQL identifier)` }),
    Schema.filter((s) => !s.includes("\u0000") || `${what} must not contain NUL`)
  )

/** A SQL expression over the row; trusted, like the rest of the file (it is the operator's). */
export const SqlText = Schema.Struct({
  sql: Schema.String.pipe(Schema.minLength(1, { message: () => "sql must be an expression" }))
})

/**
 * An embedding set declared beside a source's configured one: created (with its storage, triggers
 * and backfill by the workers) when a process starts and finds it missing. The fields are the
 * `sets add` command's, with the same rules; `active: true` makes it the one search reads as soon
 * as it is complete, once (a later `sets rollback` is not undone by the file).
 */
export const DeclaredSet = Schema.Struct({
  provider: AddSetRequest.fields.provider,
  model: AddSetRequest.fields.model,
  dimensions: AddSetRequest.fields.dimensions,
  base_url: AddSetRequest.fields.baseUrl,
  vector: AddSetRequest.fields.vector,
  active: Schema.optional(Schema.Boolean)
})
export type DeclaredSet = typeof DeclaredSet.Type

const SetDeclarations = Schema.Record({ key: SetName, value: DeclaredSet }).pipe(
  Schema.filter((sets) =>
    Object.values(sets).filter((s) => s.active === true).length <= 1 ||
    "at most one set may be active: true"
  )
)

export const SourceConfig = Schema.Struct({
  /** "schema.table" or "table" (public); names are matched exactly as the catalog spells them. */
  table: Schema.String.pipe(
    Schema.pattern(/^[^.]{1,63}(\.[^.]{1,63})?$/, { message: () => "table must be \"table\" or \"schema.table\"" })
  ),
  /** The key column; default: the table's single-column primary key (integer, bigint, uuid, text, ...). */
  id: Schema.optional(Name("id")),
  /** A column name, a template with {column} placeholders, or {"sql": "<expression>"}. */
  text: Schema.Union(
    Schema.String.pipe(
      Schema.minLength(1, { message: () => "text must name a column, or be a template such as \"{title}: {body}\"" }),
      Schema.maxLength(10_000)
    ),
    SqlText
  ),
  /** Columns whose change re-embeds a row; default: the columns the text reads. */
  watch: Schema.optional(Schema.Array(Name("watch column")).pipe(Schema.minItems(1))),
  /** An existing vector(n) column to fill; absent: vectors are kept in autoembed's schema. */
  vector: Schema.optional(Name("vector")),
  /** Columns shown by search (default: the text). */
  title: Schema.optional(Name("title")),
  content: Schema.optional(Name("content")),
  /** Columns search may filter on (filter.<column>=value; .gte/.lte/.gt/.lt for numbers and dates). */
  filters: Schema.optional(Schema.Array(Name("filter column")).pipe(Schema.maxItems(32))),
  /** A timestamp column: results' created_at and the since= filter. */
  created_at: Schema.optional(Name("created_at")),
  /** A column shown as topic_id in results and matched by topic_id=. */
  topic: Schema.optional(Name("topic")),
  /** Text search configuration for full-text and hybrid search ("english", "simple", ...). */
  language: Schema.optional(Name("language")),
  /**
   * Okapi BM25 parameters of full-text ranking: term saturation k1 (default 0.9) and length normalisation b
   * (default 0.4).
   */
  bm25: Schema.optional(Schema.Struct({
    k1: Schema.optional(
      Schema.Number.pipe(Schema.between(0, 3, { message: () => "bm25.k1 must be from 0 to 3 (0.9 by default)" }))
    ),
    b: Schema.optional(
      Schema.Number.pipe(Schema.between(0, 1, { message: () => "bm25.b must be from 0 to 1 (0.4 by default)" }))
    )
  })),
  /** Create an HNSW index when the vector column has none (default true). */
  index: Schema.optional(Schema.Boolean),
  /** Embedding sets beside the configured one, by name (see `DeclaredSet`). */
  sets: Schema.optionalWith(SetDeclarations, { exact: true })
})
export type SourceConfig = typeof SourceConfig.Type
export type SourceConfigInput = typeof SourceConfig.Encoded

/** Source names are the API's entity types: lowercase, and short enough to prefix autoembed's object names. */
export const SourceName = Schema.String.pipe(
  Schema.pattern(/^[a-z][a-z0-9_]{0,47}$/, {
    message: () => "source names must be lowercase letters, digits and _, starting with a letter, at most 48 characters"
  })
)

export const DeclaredSources = Schema.Record({ key: SourceName, value: SourceConfig })
export type DeclaredSources = typeof DeclaredSources.Type

export const ConfigFile = Schema.Struct({
  /** Keep the built-in knowledge model (topics, messages, atoms) beside the declared sources. */
  builtin: Schema.optional(Schema.Boolean),
  sources: Schema.optional(DeclaredSources),
  /** USD per 1M input tokens by model key or model name, over the defaults (see `DEFAULT_PRICES`). */
  prices: Schema.optional(PricesConfig)
})
export type ConfigFile = typeof ConfigFile.Type

/** A mistake in the configuration file: the message names the file and the key. */
export class ConfigFileError extends Schema.TaggedError<ConfigFileError>()("ConfigFileError", {
  message: Schema.String
}) implements Failure {
  get [FailureTypeId](): FailureTypeId {
    return FailureTypeId
  }
  get exitCode() {
    return EXIT_CODES.configuration
  }
}

export const CONFIG_FILE_NAMES = ["autoembed.config.json", "autoembed.config.yaml", "autoembed.config.yml"] as const

/** One line per problem: `file: sources.messages.vector: must be ...`. */
export const formatIssues = (where: string, error: ParseResult.ParseError): string =>
  ParseResult.ArrayFormatter.formatErrorSync(error)
    .map((i) => `${where}: ${i.path.length > 0 ? `${i.path.join(".")}: ` : ""}${i.message}`)
    .join("\n")

/** Validates declared sources (from a file or from code); unknown keys are mistakes, not ignored. */
export const decodeSources = (input: unknown, where: string) =>
  Schema.decodeUnknown(DeclaredSources, { onExcessProperty: "error", errors: "all" })(input).pipe(
    Effect.mapError((e) => new ConfigFileError({ message: formatIssues(where, e) }))
  )

const parseText = (path: string, text: string): Either.Either<unknown, ConfigFileError> => {
  try {
    return Either.right(path.endsWith(".json") ? JSON.parse(text) : parseYaml(text))
  } catch (e) {
    return Either.left(
      new ConfigFileError({
        message: `${path}: not valid ${path.endsWith(".json") ? "JSON" : "YAML"}: ${
          (e as Error).message.split("\n")[0]
        }`
      })
    )
  }
}

/**
 * The configuration file in use: the path in AUTOEMBED_CONFIG, else autoembed.config.json / .yaml /
 * .yml in `cwd`, else none. Read and validated once, in the configuration layer.
 */
export const loadConfigFile = (explicit: string | undefined, cwd: string = process.cwd()) =>
  Effect.gen(function*() {
    let path: string
    if (explicit !== undefined && explicit.trim() !== "") {
      path = Path.resolve(cwd, explicit)
      if (!existsSync(path)) {
        return yield* new ConfigFileError({ message: `AUTOEMBED_CONFIG names ${path}, which does not exist` })
      }
    } else {
      const found = CONFIG_FILE_NAMES.map((n) => Path.join(cwd, n)).filter((p) => existsSync(p))
      if (found.length === 0) return undefined
      if (found.length > 1) {
        return yield* new ConfigFileError({
          message: `${
            found.map((p) => Path.basename(p)).join(" and ")
          } both exist in ${cwd}; keep one (or set AUTOEMBED_CONFIG)`
        })
      }
      path = found[0]
    }
    if (!/\.(json|ya?ml)$/.test(path)) {
      return yield* new ConfigFileError({ message: `${path}: the configuration file must end in .json, .yaml or .yml` })
    }
    const text = yield* Effect.try({
      try: () => readFileSync(path, "utf8"),
      catch: (e) =>
        new ConfigFileError({ message: `${path}: cannot be read (${(e as NodeJS.ErrnoException).code ?? String(e)})` })
    })
    const raw = yield* parseText(path, text)
    const file = yield* Schema.decodeUnknown(ConfigFile, { onExcessProperty: "error", errors: "all" })(raw ?? {}).pipe(
      Effect.mapError((e) => new ConfigFileError({ message: formatIssues(path, e) }))
    )
    return { path, file }
  })
