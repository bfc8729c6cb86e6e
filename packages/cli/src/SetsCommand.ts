import { CompareReportBody, DropSetResponse, SetReportBody, SetsResponse } from "@autoembed/api/contract"
import { AutoEmbedConfig, Backfill, EmbeddingSets, type SetReport } from "@autoembed/core"
import { Args, Command, Options } from "@effect/cli"
import { Effect, Option } from "effect"
import { usage } from "./CliExit.js"
import { json, printResult, progressPrinter, services, unlessRowsFailed, unlessSucceeded } from "./Common.js"
import { compareQueries, parseQrels, parseQueries } from "./CompareFiles.js"
import { num, progressBar } from "./Output.js"
import { compareTable, formatBytes, setsTable } from "./SetsOutput.js"

/**
 * `pnpm cli sets ...`: the lifecycle of embedding sets (issue 18). Argv and formatting only: every
 * step is a call of core's `EmbeddingSets` (and `Backfill` for `add --wait`); `--json` prints what
 * the matching `/v1/sets` route answers.
 */

const source = Args.text({ name: "source" }).pipe(Args.withDescription("A declared source, e.g. messages"))
const setArg = (name: string, description: string) => Args.text({ name }).pipe(Args.withDescription(description))

/**
 * Runs a sets command on the services, without background workers. Core answers an unknown source
 * with a SetError (404, exit 1); a source the configuration cannot resolve at start-up still exits 2.
 */
const withServices = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provide(effect, services())

const sizes = (r: SetReport) => `${formatBytes(r.storageBytes)} of vectors, index ${formatBytes(r.index.sizeBytes)}`

/** `sets add --wait`: this process backfills the new set and builds its index, then reports it. */
const backfillSet = (report: SetReport, bulk: boolean, asJson: boolean) =>
  Effect.gen(function*() {
    // With --json stdout carries only the report: the bar goes to stderr, and only on a terminal.
    const out = asJson ? process.stderr : process.stdout
    const progress = progressPrinter(out, {
      bar: out.isTTY === true,
      ...(asJson ? {} : { lines: { everyMs: 5000, line: progressBar } })
    })
    // A set added with `bulk` carries core's bulk mark: this run loads it without the index and
    // builds that once at its end, even when other workers embedded every row before it began.
    const job = yield* Effect.flatMap(Backfill, (b) =>
      b.run({ entityTypes: [report.source], set: report.name, bulk: bulk ? "on" : "auto" }, progress.onProgress))
    yield* progress.done(job)
    yield* unlessSucceeded(job)
    const sets = yield* EmbeddingSets
    return { job, report: yield* sets.get(report.source, report.name) }
  })

const add = Command.make(
  "add",
  {
    source,
    provider: Options.choice("provider", ["ollama", "openai", "local"]).pipe(
      Options.withDescription("Who embeds the set's rows")
    ),
    model: Options.text("model").pipe(Options.withDescription("e.g. nomic-embed-text, text-embedding-3-small")),
    dimensions: Options.integer("dimensions").pipe(
      Options.optional,
      Options.withDescription("Vector size (default: the model's own, where autoembed knows it)")
    ),
    name: Options.text("name").pipe(Options.optional, Options.withDescription("Default <source>@<model>")),
    baseUrl: Options.text("base-url").pipe(
      Options.optional,
      Options.withDescription("Where the provider answers (default OLLAMA_HOST / OPENAI_BASE_URL)")
    ),
    vector: Options.text("vector").pipe(
      Options.optional,
      Options.withDescription("A vector(n) column of the source's table to hold the vectors (default: autoembed's)")
    ),
    wait: Options.boolean("wait").pipe(
      Options.withDescription("Backfill the set in this process with a progress bar; return when it is complete")
    ),
    json
  },
  (o) =>
    withServices(Effect.gen(function*() {
      const sets = yield* EmbeddingSets
      const config = yield* AutoEmbedConfig
      // A large source loads without the set's index and builds it once at the end (the bulk path).
      const rows = (yield* sets.list(o.source)).find((s) => s.active)?.total ?? 0
      const bulk = o.wait && rows >= config.bulkThreshold
      const { report } = yield* sets.add({
        source: o.source,
        provider: o.provider,
        model: o.model,
        dimensions: Option.getOrUndefined(o.dimensions),
        name: Option.getOrUndefined(o.name),
        baseUrl: Option.getOrUndefined(o.baseUrl),
        vector: Option.getOrUndefined(o.vector)
      }, { bulk })
      const what = `${report.name} (${report.provider}/${report.model}, ${report.dimensions}-d)`
      if (!o.wait) {
        return yield* printResult(o.json, SetReportBody, report, (r) =>
          `Added set ${what} to ${r.source}: ${num(r.missing)} rows queued; ` +
          `running workers embed them (pnpm cli worker), \`pnpm cli sets list ${r.source}\` shows progress.`)
      }
      const done = yield* backfillSet(report, bulk, o.json)
      yield* printResult(o.json, SetReportBody, done.report, (r) =>
        `${setsTable([r], false)}\n\nSet ${what} is ${r.missing + r.stale === 0 ? "complete" : "not complete"} ` +
        `(${sizes(r)}); \`pnpm cli sets activate ${r.source} ${r.name}\` makes search use it.`)
      yield* unlessRowsFailed(done.job, `pnpm cli sets list ${report.source}`)
    }))
).pipe(
  Command.withDescription(
    "Add an embedding set beside the active one; running workers (or --wait) backfill it while search goes on"
  )
)

const list = Command.make(
  "list",
  { source: Args.optional(source), json },
  (o) =>
    withServices(Effect.gen(function*() {
      const reports = yield* Effect.flatMap(EmbeddingSets, (s) => s.list(Option.getOrUndefined(o.source)))
      yield* printResult(o.json, SetsResponse, { sets: reports }, (r) => setsTable(r.sets))
    }))
).pipe(Command.withDescription("Every embedding set with its state, progress, index and size"))

const activate = Command.make(
  "activate",
  {
    source,
    set: setArg("set", "The set search is to read"),
    force: Options.boolean("force").pipe(
      Options.withDescription("Activate even though rows have no vector in the set yet (search misses them)")
    ),
    json
  },
  (o) =>
    withServices(Effect.gen(function*() {
      const sets = yield* EmbeddingSets
      const before = (yield* sets.list(o.source)).find((s) => s.active)
      const report = yield* sets.activate(o.source, o.set, { force: o.force })
      yield* printResult(o.json, SetReportBody, report, (r) =>
        before?.name === r.name
          ? `${r.name} already is the active set of ${r.source}.`
          : `Search on ${r.source} now reads ${r.name}${
            before ? `; ${before.name} stays live, \`pnpm cli sets rollback ${r.source}\` switches back` : ""
          }.${r.missing > 0 ? ` ${num(r.missing)} rows have no vector in it yet.` : ""}`)
    }))
).pipe(
  Command.withDescription("Make a set the one search reads, in one transaction (refused while incomplete)")
)

const rollback = Command.make(
  "rollback",
  { source, json },
  (o) =>
    withServices(Effect.gen(function*() {
      const sets = yield* EmbeddingSets
      const before = (yield* sets.list(o.source)).find((s) => s.active)
      const report = yield* sets.rollback(o.source)
      yield* printResult(o.json, SetReportBody, report, (r) =>
        `Search on ${r.source} reads ${r.name} again${before ? `; ${before.name} stays live` : ""}.`)
    }))
).pipe(Command.withDescription("Re-activate the set that was active before the last activation"))

const drop = Command.make(
  "drop",
  { source, set: setArg("set", "A set that is not active"), json },
  (o) =>
    withServices(Effect.gen(function*() {
      const sets = yield* EmbeddingSets
      const report = yield* sets.get(o.source, o.set)
      const dropped = yield* sets.drop(o.source, o.set)
      // A set kept in a column of the user's table leaves its vectors there: the table is theirs.
      const gone = report.storage === "internal"
        ? `its vector table (${formatBytes(report.tableBytes ?? 0)}), index (${
          formatBytes(report.index.sizeBytes)
        }), ` +
          "triggers and queue are gone"
        : `its index (${formatBytes(report.index.sizeBytes)}), triggers and queue are gone; ` +
          `the vectors in your column ${report.vectorColumn} stay`
      yield* printResult(o.json, DropSetResponse, dropped, (d) => `Dropped set ${d.dropped} of ${o.source}: ${gone}.`)
    }))
).pipe(Command.withDescription("Remove a retired set: its vectors, index, triggers and queued work"))

type FileText = Option.Option<readonly [path: string, content: string]>

/** The queries of `--queries`, judged by `--qrels`; none: core samples rows' own texts. */
const fileQueries = (queries: FileText, qrels: FileText) =>
  Effect.gen(function*() {
    if (Option.isNone(queries)) return undefined
    const [path, content] = queries.value
    const parsed = yield* parseQueries(path, content)
    if (Option.isNone(qrels)) return yield* compareQueries(parsed, undefined, { queries: path })
    const judged = yield* parseQrels(...qrels.value)
    return yield* compareQueries(parsed, judged, { queries: path, qrels: qrels.value[0] })
  })

const compare = Command.make(
  "compare",
  {
    source,
    a: setArg("a", "A set of the source"),
    b: setArg("b", "Another set of the source"),
    sample: Options.integer("sample").pipe(
      Options.optional,
      Options.withDescription("How many rows' own texts to run as queries (default 50)")
    ),
    queries: Options.fileText("queries").pipe(
      Options.optional,
      Options.withDescription("Your queries instead: BEIR jsonl, one {\"_id\", \"text\"} object a line")
    ),
    qrels: Options.fileText("qrels").pipe(
      Options.optional,
      Options.withDescription("Judgements of those queries (query-id, corpus-id, score; TSV): nDCG@10, recall@10")
    ),
    json
  },
  (o) =>
    Effect.gen(function*() {
      if (Option.isSome(o.qrels) && Option.isNone(o.queries)) {
        return yield* usage("--qrels judges the queries of --queries: give both")
      }
      if (Option.isSome(o.sample) && Option.isSome(o.queries)) {
        return yield* usage("--sample picks rows' texts as queries; with --queries, give one or the other")
      }
      const queries = yield* fileQueries(o.queries, o.qrels)
      const report = yield* withServices(Effect.flatMap(EmbeddingSets, (s) =>
        s.compare({ source: o.source, a: o.a, b: o.b, sample: Option.getOrUndefined(o.sample), queries })))
      yield* printResult(o.json, CompareReportBody, report, compareTable)
    })
).pipe(
  Command.withDescription(
    "Run the same queries against two sets: top-10 overlap, rows, latency, sizes; nDCG@10 and recall@10 with qrels"
  )
)

export const sets = Command.make("sets").pipe(
  Command.withDescription("Embedding sets: several models side by side, one active for search"),
  Command.withSubcommands([add, list, activate, rollback, drop, compare])
)
