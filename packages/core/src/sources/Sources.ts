import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Context, Effect, Layer, Option, Schema } from "effect"
import { AutoEmbedConfig, type AutoEmbedConfigShape } from "../config/AutoEmbedConfig.js"
import { decodeSources, type SourceConfig } from "../config/SourceConfig.js"
import { EXIT_CODES, type Failure, FailureTypeId } from "../Failure.js"
import { builtinSources, createBuiltinTables } from "../knowledge/Builtin.js"
import type { DimensionMismatch } from "../providers/EmbeddingProvider.js"
import { readSetRows, setSource } from "../sets/SetRows.js"
import { Database, type DatabaseError } from "../storage/Database.js"
import { checkPrerequisites, ensureIndexes, installSource, installState, removeStaleTriggers } from "./Installer.js"
import { type ResolveContext, resolveSource, type Source } from "./SourceCatalog.js"

export type { Source } from "./SourceCatalog.js"

/** A declared source that cannot be served as declared; the message has one line per problem. */
export class SourceError extends Schema.TaggedError<SourceError>()("SourceError", {
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

export interface Declared {
  readonly name: string
  readonly config: SourceConfig
  readonly builtin: boolean
}

export interface SourcesShape {
  readonly all: ReadonlyArray<Source>
  readonly names: ReadonlyArray<string>
  /** The built-in knowledge model is installed and served. */
  readonly builtin: boolean
  readonly get: (name: string) => Effect.Effect<Source, SourceError>
}

/** Where the declarations come from, for messages. */
export const originOf = (config: AutoEmbedConfigShape) =>
  Option.getOrElse(config.configFile, () => "the sources given in code")

/** The built-in sources (when on) and the declared ones, validated, with unique names. */
export const declaredSources = (config: AutoEmbedConfigShape) =>
  Effect.gen(function*() {
    const origin = originOf(config)
    const declared = yield* decodeSources(config.sources, origin).pipe(
      Effect.mapError((e) => new SourceError({ message: e.message }))
    )
    const builtin = config.builtin ? Object.entries(builtinSources) : []
    const clash = builtin.find(([name]) => name in declared)
    if (clash) {
      return yield* new SourceError({
        message: `Source "${clash[0]}" in ${origin} has the name of a built-in source; ` +
          `rename it, or turn the built-in model off (AUTOEMBED_BUILTIN=false)`
      })
    }
    return [
      ...builtin.map(([name, c]): Declared => ({ name, config: c, builtin: true })),
      ...Object.entries(declared).map(([name, c]): Declared => ({ name, config: c, builtin: false }))
    ]
  })

/** Resolves sources against the catalog; all problems of all sources in one error, one line each. */
export const resolveSources = (
  declared: ReadonlyArray<Declared>,
  ctx: Omit<ResolveContext, "builtin" | "origin">,
  origin: string
) =>
  Effect.gen(function*() {
    const results = yield* Effect.forEach(declared, (d) =>
      resolveSource(d.name, d.config, {
        ...ctx,
        builtin: d.builtin,
        origin: d.builtin ? "the built-in model" : origin
      }))
    const problems = results.flatMap((r) => r.problems)
    if (problems.length > 0) return yield* new SourceError({ message: problems.join("\n") })
    return results.flatMap((r) => (r.source ? [r.source] : []))
  })

export const resolveContext = (config: AutoEmbedConfigShape, server: boolean) => ({
  dimensions: config.dimensions,
  stateSchema: config.stateSchema,
  server
})

export const indexSettingsOf = (config: AutoEmbedConfigShape) => (s: Source) => ({
  kind: config.indexKind,
  dimensions: s.dimensions,
  m: config.hnswM,
  efConstruction: config.hnswEfConstruction
})

/**
 * Installs what the configuration needs, idempotently: every declared source is checked against
 * the catalog first (a mistake changes nothing), then autoembed's schema, the built-in tables when
 * on, and each source's triggers are installed in one transaction, and missing indexes are built
 * (CONCURRENTLY on a server). Triggers of sources no longer declared are dropped.
 */
const install = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const config = yield* AutoEmbedConfig
  const database = yield* Database
  const server = database.kind === "postgres"
  const declared = yield* declaredSources(config)
  const ctx = resolveContext(config, server)
  const origin = originOf(config)
  yield* checkPrerequisites(config.stateSchema, database.description)
  const declaredOnly = yield* resolveSources(declared.filter((d) => !d.builtin), ctx, origin)
  yield* installState(config.stateSchema)
  const all = yield* sql.withTransaction(
    Effect.gen(function*() {
      // Several processes may start at once; DDL on the same objects must not interleave.
      yield* sql`SELECT pg_advisory_xact_lock(7215030001)`
      if (config.builtin) yield* createBuiltinTables(config.dimensions)
      const builtin = yield* resolveSources(declared.filter((d) => d.builtin), ctx, origin)
      const resolved = [...builtin, ...declaredOnly]
      // The sets added beside the configured ones follow their source's table, id and text.
      const sets = (yield* readSetRows(sql, config.stateSchema)).filter((r) => !r.configured).flatMap((r) => {
        const base = resolved.find((s) => s.name === r.source)
        return base ? [setSource(base, r, config.stateSchema)] : []
      })
      for (const s of [...resolved, ...sets]) yield* installSource(s, config.stateSchema)
      const removed = yield* removeStaleTriggers([...resolved, ...sets], config.stateSchema)
      for (const tg of removed) {
        yield* Effect.logInfo(
          `autoembed: removed trigger ${tg.name} on ${tg.schema}.${tg.table} ` +
            `(source "${tg.source}" is no longer declared)`
        )
      }
      return { resolved, sets }
    })
  )
  yield* ensureIndexes([...all.resolved, ...all.sets], config.stateSchema, indexSettingsOf(config), server)
  return all.resolved
})

export const makeSourcesShape = (all: ReadonlyArray<Source>, builtin: boolean): SourcesShape => {
  const byName = new Map(all.map((s) => [s.name, s]))
  const names = all.map((s) => s.name)
  return {
    all,
    names,
    builtin,
    get: (name: string) => {
      const s = byName.get(name)
      return s
        ? Effect.succeed(s)
        : Effect.fail(
          new SourceError({ message: `Unknown entity type "${name}"; known: ${names.join(", ") || "none"}` })
        )
    }
  }
}

export class Sources extends Context.Tag("@autoembed/core/Sources")<Sources, SourcesShape>() {
  /** The configured sources, installed in the database at start-up. */
  static readonly layer: Layer.Layer<
    Sources,
    SourceError | DimensionMismatch | DatabaseError | SqlError,
    SqlClient.SqlClient | AutoEmbedConfig | Database
  > = Layer.effect(
    Sources,
    Effect.gen(function*() {
      const config = yield* AutoEmbedConfig
      return makeSourcesShape(yield* install, config.builtin)
    })
  )
}
