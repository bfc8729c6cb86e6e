import {
  BackfillJobSchema,
  decodeSearchQuery,
  DryRunResponse,
  RetryFailedResponse,
  SearchResponseBody,
  StatusResponse
} from "@autoembed/api/contract"
import { processStop, type StopReason } from "@autoembed/api/lifecycle"
import {
  AutoEmbedConfig,
  Backfill,
  type BackfillInput,
  type BackfillJob,
  Database,
  EXIT_CODES,
  inspectSources,
  makeDatabaseLayer,
  resetEmbeddings as resetVectors,
  Search,
  Status,
  uninstall as uninstallAll,
  VectorIndex
} from "@autoembed/core"
import { Args, Command, Options, Prompt } from "@effect/cli"
import { Console, Effect, Layer, Option, ParseResult } from "effect"
import { CliExit } from "./CliExit.js"
import { json, printResult, progressPrinter, services, unlessRowsFailed, unlessSucceeded } from "./Common.js"
import { encode, sourcesJson, toJson } from "./Json.js"
import { dryRunTable, sourcesTable, statusTable, summaryTable } from "./Output.js"
import { sets } from "./SetsCommand.js"

export { CliExit } from "./CliExit.js"

const types = Options.text("type").pipe(
  Options.withDescription(
    "Source to include (repeatable or comma-separated): a name from the configuration file, or atoms, messages"
  ),
  Options.repeated
)
const typesOrAll = (
  t: ReadonlyArray<string>
) => (t.length > 0 ? t.flatMap((s) => s.split(",")).map((s) => s.trim()).filter(Boolean) : undefined)

/** Only the configuration and the database: for commands that must not install anything. */
const databaseOnly = () => makeDatabaseLayer().pipe(Layer.provideMerge(AutoEmbedConfig.layer))

const migrate = Command.make(
  "migrate",
  {
    resetEmbeddings: Options.boolean("reset-embeddings").pipe(
      Options.withDescription(
        "Drop the vectors autoembed keeps (its own tables, the built-in tables' columns) and re-embed at " +
          "EMBEDDING_DIMENSIONS"
      )
    )
  },
  ({ resetEmbeddings }) =>
    Effect.gen(function*() {
      if (resetEmbeddings) {
        // Before the sources are installed: they refuse vectors of the wrong size.
        const { reset, skipped } = yield* resetVectors.pipe(Effect.provide(databaseOnly()))
        yield* Console.log(`Dropped the vectors of ${reset.length ? reset.join(", ") : "no source"}.`)
        for (const line of skipped) yield* Console.log(`Left alone: ${line}`)
      }
      const report = yield* Effect.flatMap(Status, (s) => s.report()).pipe(Effect.provide(services()))
      const missing = Object.values(report.sources).reduce((n, s) => n + s.missing, 0)
      yield* Console.log(
        `Installed on ${report.database.description}: ${Object.keys(report.sources).join(", ") || "no sources"} ` +
          `(vectors: ${report.provider.dimensions}-d, ${report.provider.modelKey}); ${missing} rows without a vector.`
      )
    })
).pipe(
  Command.withDescription("Install what the configuration needs (schema, triggers, indexes); runs at every start too")
)

const sources = Command.make("sources", { json }, ({ json }) =>
  Effect.gen(function*() {
    const report = yield* inspectSources
    yield* Console.log(json ? JSON.stringify(sourcesJson(report), null, 2) : sourcesTable(report))
    if (report.problems.length > 0) {
      return yield* Effect.fail(new CliExit({ exitCode: EXIT_CODES.failed, message: report.problems.join("\n") }))
    }
  }).pipe(Effect.provide(databaseOnly()))).pipe(
    Command.withDescription(
      "Each declared source with what autoembed finds (rows, missing vectors, triggers, index); " +
        "non-zero exit on problems"
    )
  )

const uninstall = Command.make(
  "uninstall",
  { yes: Options.boolean("yes").pipe(Options.withDescription("Do not ask for confirmation")) },
  ({ yes }) =>
    Effect.gen(function*() {
      const config = yield* AutoEmbedConfig
      const database = yield* Database
      const what = `every autoembed trigger, the indexes it created and the schema ${config.stateSchema} ` +
        `(queue, bookkeeping, vectors kept there) ` +
        `from ${database.description}; your tables and the vectors in their columns stay`
      if (!yes) {
        if (process.stdin.isTTY !== true) {
          return yield* Effect.fail(
            new CliExit({
              exitCode: EXIT_CODES.failed,
              message: `uninstall removes ${what}. Run it with --yes to confirm.`
            })
          )
        }
        const confirmed = yield* Prompt.confirm({ message: `Remove ${what}?`, initial: false })
        if (!confirmed) return yield* Console.log("Nothing removed.")
      }
      const removed = yield* uninstallAll(config.stateSchema, database.kind === "postgres")
      yield* Console.log(
        `Removed ${removed.triggers} triggers, ${removed.indexes.length} indexes${
          removed.indexes.length ? ` (${removed.indexes.join(", ")})` : ""
        }` +
          `${removed.schema ? ` and the schema ${removed.schema}` : ""}. Your tables are as they were.`
      )
    }).pipe(Effect.provide(databaseOnly()))
).pipe(
  Command.withDescription(
    "Remove every trace of autoembed from the database (triggers, owned indexes, its schema); user tables stay"
  )
)

const status = Command.make("status", { json }, ({ json }) =>
  Effect.gen(function*() {
    const report = yield* Effect.flatMap(Status, (s) => s.report())
    yield* printResult(json, StatusResponse, report, statusTable)
  }).pipe(Effect.provide(services()))).pipe(
    Command.withDescription("Per-type totals, pending, stale and failed rows, provider and model")
  )

const backfill = Command.make(
  "backfill",
  {
    dryRun: Options.boolean("dry-run").pipe(Options.withDescription("Count what a run would do; change nothing")),
    types,
    batchSize: Options.integer("batch-size").pipe(
      Options.optional,
      Options.withDescription("Texts per provider request")
    ),
    concurrency: Options.integer("concurrency").pipe(
      Options.optional,
      Options.withDescription("Provider requests in flight")
    ),
    limit: Options.integer("limit").pipe(Options.optional, Options.withDescription("Embed at most this many rows")),
    includeFailed: Options.boolean("include-failed").pipe(Options.withDescription("Retry rows marked failed too")),
    bulk: Options.choice("bulk", ["auto", "on", "off"]).pipe(
      Options.withDefault("auto" as const),
      Options.withDescription(
        "Drop the HNSW index during the load and build it once at the end " +
          "(auto: above AUTOEMBED_BULK_THRESHOLD rows; on: every type with rows to embed)"
      )
    ),
    json
  },
  (o) => {
    // Plain usage mistakes are refused before the database is opened.
    for (
      const [name, v] of [["--batch-size", o.batchSize], ["--concurrency", o.concurrency], [
        "--limit",
        o.limit
      ]] as const
    ) {
      if (Option.isSome(v) && v.value < 1) {
        return Effect.fail(
          new CliExit({ exitCode: EXIT_CODES.failed, message: `${name} must be a positive whole number` })
        )
      }
    }
    return Effect.gen(function*() {
      const backfill = yield* Backfill
      const database = yield* Database
      const input: BackfillInput = {
        entityTypes: typesOrAll(o.types),
        batchSize: Option.getOrUndefined(o.batchSize),
        concurrency: Option.getOrUndefined(o.concurrency),
        limit: Option.getOrUndefined(o.limit),
        includeFailed: o.includeFailed,
        bulk: o.bulk
      }
      if (o.dryRun) {
        const report = yield* backfill.dryRun({ ...input, dryRun: true })
        return yield* printResult(o.json, DryRunResponse, report, (r) => dryRunTable(r, database.description), 0)
      }
      // Off a terminal (or with --json) one JSON line a second, then one for the end.
      const event = (name: string, job: BackfillJob) =>
        JSON.stringify({ event: name, ...encode(BackfillJobSchema, job) })
      const tty = process.stdout.isTTY === true && !o.json
      const progress = progressPrinter(process.stdout, {
        bar: tty,
        lines: { everyMs: 1000, line: (job) => event("progress", job) }
      })
      const job = yield* backfill.run(input, progress.onProgress)
      yield* progress.done(job)
      process.stdout.write(tty ? `\n${summaryTable(job)}\n` : `${event("done", job)}\n`)
      yield* unlessSucceeded(job)
      yield* unlessRowsFailed(job, "pnpm cli status")
    }).pipe(Effect.provide(services()))
  }
).pipe(Command.withDescription("Embed every row with a missing or stale embedding (resumable)"))

const retryFailed = Command.make("retry-failed", { types, json }, (o) =>
  Effect.gen(function*() {
    const result = yield* Effect.flatMap(Backfill, (b) => b.retryFailed(typesOrAll(o.types)))
    yield* printResult(
      o.json,
      RetryFailedResponse,
      result,
      (r) => `${r.requeued} failed rows requeued; running workers will embed them.`,
      0
    )
  }).pipe(Effect.provide(services()))).pipe(Command.withDescription("Requeue rows marked failed"))

const reembed = Command.make("reembed", { types, json }, (o) =>
  Effect.gen(function*() {
    const result = yield* Effect.flatMap(Backfill, (b) => b.reembed(typesOrAll(o.types)))
    yield* Console.log(
      o.json
        ? JSON.stringify(result)
        : `${result.queued} rows with a missing or other model's vector queued for the current model.`
    )
  }).pipe(Effect.provide(services()))).pipe(
    Command.withDescription("Queue rows embedded by another model (after changing EMBEDDING_MODEL)")
  )

const search = Command.make(
  "search",
  {
    query: Args.text({ name: "query" }).pipe(Args.withDescription("What to look for")),
    types: Options.text("types").pipe(
      Options.optional,
      Options.withDescription("Comma-separated entity types (default: all)")
    ),
    limit: Options.text("limit").pipe(Options.optional, Options.withDescription("1 to 100 (default 10)")),
    mode: Options.choice("mode", ["hybrid", "vector", "text"]).pipe(
      Options.optional,
      Options.withDescription("Default hybrid")
    ),
    topicId: Options.text("topic-id").pipe(Options.optional),
    atomType: Options.text("atom-type").pipe(Options.optional),
    since: Options.text("since").pipe(Options.optional, Options.withDescription("ISO date, e.g. 2024-05-01")),
    minScore: Options.text("min-score").pipe(Options.optional),
    set: Options.text("set").pipe(
      Options.optional,
      Options.withDescription("An embedding set to search instead of the active one (see `sets list`)")
    ),
    filter: Options.keyValueMap("filter").pipe(
      Options.optional,
      Options.withDescription(
        "A filter on a declared column (repeatable): --filter chat_id=42 --filter created_at.gte=2024-05-01"
      )
    ),
    json
  },
  (o) =>
    Effect.gen(function*() {
      // The same decoding as GET /v1/search, so the CLI and the API accept exactly the same input.
      const params: Record<string, string> = { q: o.query }
      const add = (key: string, value: Option.Option<string>) => Option.map(value, (v) => (params[key] = v))
      add("types", o.types)
      add("limit", o.limit)
      add("mode", o.mode)
      add("topic_id", o.topicId)
      add("atom_type", o.atomType)
      add("since", o.since)
      add("min_score", o.minScore)
      add("set", o.set)
      for (const [key, value] of Option.getOrElse(o.filter, () => new Map<string, string>())) {
        params[`filter.${key}`] = value
      }
      const request = yield* decodeSearchQuery(params).pipe(
        Effect.mapError((e) => {
          const issue = ParseResult.ArrayFormatter.formatErrorSync(e)[0]
          return new CliExit({
            exitCode: EXIT_CODES.failed,
            message: `Invalid search: ${issue ? `${issue.path.join(".") || "query"}: ${issue.message}` : e.message}`
          })
        })
      )
      const result = yield* Effect.flatMap(Search, (s) => s.search(request))
      if (o.json) return yield* Console.log(toJson(SearchResponseBody, result, 2))
      if (result.results.length === 0) {
        return yield* Console.log(
          `No results for "${result.query}" (${result.mode}, ${result.model}).`
        )
      }
      const lines = result.results.map((r, i) => {
        const head = `${String(i + 1).padStart(2)}. [${r.score.toFixed(3)}] ${r.type} ${r.id}${
          r.title ? `: ${r.title}` : ""
        }`
        const snippet = r.content.replace(/\s+/g, " ").slice(0, 160)
        return `${head}\n      ${snippet}`
      })
      const degraded = result.degraded === undefined ? [] : [`(text results only: ${result.degraded})`]
      yield* Console.log(
        [`${result.mode} search for "${result.query}" (${result.model})`, ...degraded, "", ...lines].join("\n")
      )
    }).pipe(Effect.provide(services()))
).pipe(Command.withDescription("Semantic, full-text or hybrid search over embedded rows"))

const reindex = Command.make(
  "reindex",
  {
    force: Options.boolean("force").pipe(
      Options.withDescription("Rebuild even when the index already matches the settings")
    ),
    types,
    json
  },
  (o) =>
    Effect.gen(function*() {
      const index = yield* VectorIndex
      const rebuilt = yield* index.reindex({ force: o.force, sources: typesOrAll(o.types) })
      const after = yield* index.describe()
      if (o.json) return yield* Console.log(JSON.stringify({ rebuilt, indexes: after }, null, 2))
      yield* Console.log(
        rebuilt.length > 0
          ? `Rebuilt the HNSW index of ${rebuilt.join(", ")}.`
          : "Every HNSW index already matches the settings."
      )
      for (const i of after) {
        yield* Console.log(
          `  ${i.source}: ${i.kind ?? "none"} m=${i.m ?? "-"} ef_construction=${i.efConstruction ?? "-"} ${
            i.valid ? "valid" : "not valid"
          }`
        )
      }
    }).pipe(Effect.provide(services()))
).pipe(
  Command.withDescription(
    "Build the HNSW indexes as configured (AUTOEMBED_INDEX_TYPE, AUTOEMBED_HNSW_M, AUTOEMBED_HNSW_EF_CONSTRUCTION)"
  )
)

/**
 * The server's own program, in this process's main fiber (imported only here, so the other commands do
 * not load the HTTP stack): as under `pnpm start`, runMain's interrupt on SIGTERM or SIGINT, or the
 * stop request it waits for, starts its graceful shutdown.
 */
const serve = Command.make("serve", {}, () =>
  Effect.promise(() => import("@autoembed/api")).pipe(
    Effect.flatMap((api) => api.serverProgram({ workers: false })),
    // The server has printed the failure's one line; only its exit code is left to give.
    Effect.catchTag("StartupFailure", (e) => new CliExit({ exitCode: e.exitCode, message: "" }))
  )).pipe(Command.withDescription("Run the HTTP API only (run the embedding workers with `worker`)"))

/**
 * Waits for SIGTERM, SIGINT or the exit of the parent process. The worker then ends (a signal also
 * interrupts it, through runMain): its services drain (batches in flight finish, claimed rows go
 * back) and it exits with 0.
 */
const untilStopRequested = Effect.async<StopReason>((resume) => {
  const stop = processStop()
  stop.watchParent()
  return Effect.sync(stop.onStop((reason) => resume(Effect.succeed(reason))))
})

const worker = Command.make("worker", {}, () =>
  Effect.gen(function*() {
    const status = yield* Effect.flatMap(Status, (s) => s.report())
    yield* Console.log(
      `autoembed worker ${status.queue.workerId} embedding with ${status.provider.modelKey} ` +
        `on ${status.database.description}; Ctrl-C or SIGTERM stops it gracefully.`
    )
    // A signal both answers the stop request and makes runMain interrupt this fiber, whichever comes
    // first: either way the line is printed and the services drain as their scope closes.
    const stopping = Effect.suspend(() =>
      Console.log(
        `${processStop().reason() ?? "interrupted"}: stopping ` +
          "(batches in flight finish, claimed rows go back to the queue)"
      )
    )
    yield* Effect.ensuring(untilStopRequested, stopping)
  }).pipe(Effect.provide(services({ workers: true })))).pipe(
    Command.withDescription("Run embedding workers only (scale out: claims are safe across processes)")
  )

export const root = Command.make("autoembed").pipe(
  Command.withDescription("Keeps pgvector embeddings of PostgreSQL rows correct and searchable"),
  Command.withSubcommands([
    migrate,
    sources,
    status,
    backfill,
    search,
    retryFailed,
    reembed,
    reindex,
    sets,
    serve,
    worker,
    uninstall
  ])
)
