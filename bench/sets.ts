/**
 * Issue 18's figures, embedding sets on the PostgreSQL server, 100,000 rows of a declared source.
 *
 * The source is a user's own `messages` table (id, chat_id, sender, content, created_at and an
 * `embedding vector(1024)` column, as the original backend's), filled before autoembed attaches
 * and declared through the `sources` option: text `content`, vector `embedding`, filter `chat_id`.
 * Texts are chat messages of 3–60 words drawn with Zipf's law from a 6,000-word vocabulary (the
 * commonest ranks are English words, the tail pronounceable made-up ones), so lengths and word
 * frequencies look like real chat; queries are 2–5 words of ranks 40–3,000.
 *
 * Provider: Local (in process, deterministic, ~75 µs a row of Node CPU) for every set. Both arms
 * of figure 1 embed the same rows with the same function, so the provider's share is equal in
 * numerator and denominator; a slower provider (Ollama, an API) adds the same seconds to both and
 * only pulls the ratio towards 1. With the cheapest provider the ratio shows what the sets
 * machinery itself costs (queue insert, triggers, the set's storage, its index build): the
 * strictest form of the goal.
 *
 * Figure 1: seconds from `EmbeddingSets.add(..., { bulk: true })` until the set is complete with
 * its HNSW index (then `Backfill.run({ entityTypes, set, bulk: "on" })`, and the CLI's check that
 * the index exists: exactly what `pnpm cli sets add --wait` calls) ÷ seconds of the configured
 * set's plain bulk backfill from an empty store (`Backfill.run({ entityTypes, set: <configured>,
 * bulk: "on" })`: queue, embed, write without the index, build it). Each run is a fresh scratch
 * database; the arm order alternates between runs (run 1 plain first, run 2 set first, ...), so
 * cache warmth and a growing database favour neither. Between the arms the database is vacuumed
 * and analysed (untimed), as autovacuum would be (it is off on this server). Set B has the configured set's dimensions
 * by default (same vectors, same graph to build); `--b-dims 768` measures another size.
 *
 * Figure 2: in the last run's database, with the configured set complete and active (set B
 * dropped), `Search.search` in vector mode on the active set: an idle pass, then back to back
 * while `pnpm cli sets add messages --provider local ... --wait` builds a shadow set in its own
 * process (as an operator would run it beside the API), then an idle pass again. The query
 * vectors are cached after a warm-up pass, so the times are the database's (and this process's).
 * Searches are paced, one every --search-interval-ms (100: 10 a second, an API's steady traffic;
 * back to back, one client would itself take a core of this 2-core machine from the build).
 * Searches are tagged with what the shadow build was doing (CLI start-up, embedding, index
 * build, watched in pg_stat_progress_create_index); "during" = embedding + index build.
 *
 *   pnpm bench sets [--rows 100000] [--runs 2] [--dims 1024] [--b-dims 1024] [--queries 200]
 *                   [--search on|off] [--search-interval-ms 100]
 *                   [--log-statements] [--rebuilds 0]
 *
 * `--log-statements` (diagnosis): every statement of the scratch databases goes to the server's log
 * with its duration (log_min_duration_statement = 0 on those databases only), to see where an
 * arm's time goes. `--rebuilds N` (diagnosis): after both arms, builds each set's HNSW index again
 * N times beside the real one, alternating (B, A, B, A, ...), with VectorIndex.build's settings: the
 * index build alone, same database, same vectors.
 */
import {
  AutoEmbed,
  Backfill,
  type BackfillJob,
  EmbeddingSets,
  LOCAL_MODEL,
  LocalProviderLive,
  Search,
  SearchRequest,
  SetRegistry,
  VectorIndex
} from "@autoembed/core"
import * as SqlClient from "@effect/sql/SqlClient"
import { Duration, Effect, Layer, Option, Redacted, Schema } from "effect"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import pg from "pg"
import {
  createScratchDatabase,
  describeServer,
  elapsedMs,
  figure,
  flagValue,
  fmt,
  fmtSummary,
  goal,
  note,
  now,
  numberFlag,
  percentile,
  repoRoot,
  rng,
  runIfMain,
  serverUrl,
  summarize,
  writeResult
} from "./lib.js"

const SOURCE = "messages"
const SOURCE_CONFIG = {
  table: "public.messages",
  text: "content",
  vector: "embedding",
  filters: ["chat_id"],
  created_at: "created_at"
}

// ---------------------------------------------------------------------------------------------
// Text

/** The commonest ranks: English words of a team chat; the tail is made up (see `word`). */
const COMMON = (
  "the to i a and it is we that you in for of on this be have just so but not can with do at are was if " +
  "deploy will what it's think get there need one up they about me out now as from my like should all can't " +
  "yes no ok thanks tomorrow today release build test tests fix fixed bug issue prod staging migration database " +
  "index query slow fast queue worker job failed retry error logs alert pager incident rollback branch merge review " +
  "ticket customer invoice billing api endpoint latency timeout cache memory cpu disk backup restore replica " +
  "schema table column vector search embedding model provider token limit rate config secret key region cluster " +
  "node service team meeting standup demo sprint roadmap plan doc docs draft update check look see know want " +
  "still again already maybe probably because before after when then also more less much very really good bad " +
  "new old first last next week day hour minute morning afternoon night monday friday someone everyone anyone " +
  "why how who where which their our your his her its them us him could would might must may lunch coffee " +
  "offsite holiday vacation sick call link screen share slides number version patch feature flag canary percent"
).split(" ")
const SYLLABLES = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "be", "du", "fe", "gi", "ho", "ju", "va", "ze"]
const VOCABULARY = 6000

const word = (rank: number) => {
  if (rank < COMMON.length) return COMMON[rank]
  let s = ""
  for (let n = rank; n > 0; n = Math.floor(n / SYLLABLES.length)) s += SYLLABLES[n % SYLLABLES.length]
  return s
}

/** Ranks with weight 1/r over [from, to). */
const zipf = (random: () => number, from: number, to: number) => () =>
  Math.floor(from * Math.pow(to / from, random())) - 1

/** A chat message: 3–60 words (most short), sometimes a mention, a number or a question. */
const messageText = (random: () => number, draw: () => number) => {
  const length = Math.min(60, 3 + Math.floor(-Math.log(1 - random()) * 12))
  const words = Array.from({ length }, () => word(draw()))
  if (random() < 0.15) words.unshift(`@${word(COMMON.length + Math.floor(random() * 300))}`)
  if (random() < 0.1) words.push(String(Math.floor(random() * 5000)))
  return words.join(" ") + (random() < 0.2 ? "?" : "")
}

// ---------------------------------------------------------------------------------------------
// Database and layers

/** The user's table, filled before autoembed attaches (no triggers yet, no vectors). */
const seed = async (url: string, rows: number, dims: number) => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await client.query("CREATE EXTENSION IF NOT EXISTS vector")
    await client.query(`CREATE TABLE messages (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      chat_id bigint NOT NULL,
      sender text NOT NULL,
      content text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      embedding vector(${dims}))`)
    const random = rng(18)
    const draw = zipf(random, 1, VOCABULARY + 1)
    for (let start = 0; start < rows; start += 10_000) {
      const n = Math.min(10_000, rows - start)
      const texts = Array.from({ length: n }, () => messageText(random, draw))
      const chats = Array.from({ length: n }, () => 1 + Math.floor(random() * 40))
      const senders = Array.from({ length: n }, () => word(COMMON.length + Math.floor(random() * 200)))
      await client.query(
        `INSERT INTO messages (chat_id, sender, content, created_at)
         SELECT c, s, t, now() - (random() * interval '365 days')
         FROM unnest($1::bigint[], $2::text[], $3::text[]) AS x(c, s, t)`,
        [chats, senders, texts]
      )
    }
    await client.query("VACUUM ANALYZE messages")
  } finally {
    await client.end()
  }
}

/** Diagnosis: the server logs every statement of this database with its duration. */
const logEveryStatement = async (database: string) => {
  const client = new pg.Client({ connectionString: serverUrl() })
  await client.connect()
  try {
    await client.query(`ALTER DATABASE ${database} SET log_min_duration_statement = 0`)
    // Not the parameters: a batch's vectors would write megabytes of hex into the log.
    await client.query(`ALTER DATABASE ${database} SET log_parameter_max_length = 0`)
  } finally {
    await client.end()
  }
  note(`logging every statement of ${database} with its duration in the server's log`)
}

const sqlDrop = (schema: string, name: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`DROP INDEX IF EXISTS ${sql(`${schema}.${name}`)}`)

/**
 * What autovacuum does within a minute of a bulk load, done at once between the arms (untimed):
 * this server runs with autovacuum off, so without it the second arm of a run would claim from a
 * queue full of the first arm's dead rows, and search would plan its join on autoembed.rows with
 * no statistics (an estimate of 3 rows: a nested loop over a materialised scan, ~0.8 s a query).
 */
const vacuum = Effect.flatMap(SqlClient.SqlClient, (sql) => sql`VACUUM ANALYZE`)

const layerFor = (url: string, dims: number) =>
  AutoEmbed.layer({
    env: false,
    workers: false,
    provider: LocalProviderLive,
    sources: { [SOURCE]: SOURCE_CONFIG },
    config: {
      databaseUrl: Option.some(Redacted.make(url)),
      provider: "local",
      dimensions: dims,
      logLevel: "warning"
    } as any
  })

const queryTexts = (n: number) => {
  const random = rng(1018)
  const draw = zipf(random, 40, 3000)
  return Array.from(
    { length: n },
    () => Array.from({ length: 2 + Math.floor(random() * 4) }, () => word(draw())).join(" ")
  )
}

// ---------------------------------------------------------------------------------------------
// Figure 1: the two arms

interface Arm {
  /** Wall-clock start and end (to find the arm's statements in the server's log). */
  readonly startedAt: string
  readonly endedAt: string
  readonly seconds: number
  /** From the start until the backfill began embedding (queueing: `add`'s insert, discover). */
  readonly queueSeconds: number
  /** Embedding and writing without the index. */
  readonly loadSeconds: number
  /** The index build (and ANALYZE) at the end. */
  readonly buildSeconds: number
  readonly embedded: number
}

/** Times `job` phases: the start of "embedding" and of "indexing" seen through onProgress. */
const phaseClock = (t0: bigint) => {
  let embeddingAt: number | undefined
  let indexingAt: number | undefined
  return {
    onProgress: (j: BackfillJob) =>
      Effect.sync(() => {
        if (embeddingAt === undefined && j.phase !== "queueing") embeddingAt = elapsedMs(t0) / 1000
        if (indexingAt === undefined && j.phase === "indexing") indexingAt = elapsedMs(t0) / 1000
      }),
    split: (total: number, before = 0) => {
      const e = embeddingAt ?? before
      const i = indexingAt ?? total
      return { queueSeconds: Math.max(before, e), loadSeconds: i - Math.max(before, e), buildSeconds: total - i }
    }
  }
}

/** The configured set's plain bulk backfill from an empty store. */
const plainArm = (configured: string, rows: number) =>
  Effect.gen(function*() {
    const backfill = yield* Backfill
    const startedAt = new Date().toISOString()
    const t0 = now()
    const clock = phaseClock(t0)
    const job = yield* backfill.run({ entityTypes: [SOURCE], set: configured, bulk: "on" }, clock.onProgress)
    const seconds = elapsedMs(t0) / 1000
    if (job.state !== "succeeded" || job.succeeded !== rows) {
      throw new Error(`plain bulk backfill ended ${job.state} with ${job.succeeded}/${rows}: ${job.error}`)
    }
    const index = yield* (yield* EmbeddingSets).get(SOURCE, configured)
    if (!index.index.exists || !index.index.valid) throw new Error("the configured set's index was not rebuilt")
    const arm: Arm = {
      startedAt,
      endedAt: new Date().toISOString(),
      seconds,
      ...clock.split(seconds),
      embedded: job.succeeded
    }
    return arm
  })

/** `pnpm cli sets add <source> --provider local --model ... --dimensions d --wait`, through its library calls. */
const setArm = (name: string, dims: number, rows: number) =>
  Effect.gen(function*() {
    const sets = yield* EmbeddingSets
    const startedAt = new Date().toISOString()
    const t0 = now()
    const { report, target } = yield* sets.add({
      source: SOURCE,
      provider: "local",
      model: LOCAL_MODEL,
      dimensions: dims,
      name
    }, { bulk: true })
    const addSeconds = elapsedMs(t0) / 1000
    const clock = phaseClock(t0)
    const job = yield* Effect.flatMap(Backfill, (b) =>
      b.run({ entityTypes: [report.source], set: report.name, bulk: "on" }, clock.onProgress))
    if (job.state !== "succeeded") {
      throw new Error(`set backfill ended ${job.state}: ${job.error}`)
    }
    const index = yield* VectorIndex
    if (!(yield* index.info(target)).exists) {
      yield* index.build(target)
    }
    const done = yield* sets.get(report.source, report.name)
    const seconds = elapsedMs(t0) / 1000
    if (done.missing + done.stale > 0 || done.embedded !== rows || !done.index.exists || !done.index.valid) {
      throw new Error(`set ${name} is not complete: ${JSON.stringify(done)}`)
    }
    const arm: Arm & { addSeconds: number } = {
      startedAt,
      endedAt: new Date().toISOString(),
      seconds,
      addSeconds,
      ...clock.split(seconds, addSeconds),
      embedded: job.succeeded
    }
    return arm
  })

// ---------------------------------------------------------------------------------------------
// Figure 2: searches on the active set while a shadow set builds in another process

type Phase = "idle-before" | "startup" | "embedding" | "indexing" | "idle-after"

const shadowBuildWithSearches = (
  url: string,
  dims: number,
  queries: ReadonlyArray<string>,
  rows: number,
  interval: number
) =>
  Effect.gen(function*() {
    const search = yield* Search
    const requests = queries.map((q) =>
      Schema.decodeUnknownSync(SearchRequest)({ q, mode: "vector", limit: 10, types: [SOURCE] })
    )
    const times: Record<Phase, Array<number>> = {
      "idle-before": [],
      startup: [],
      embedding: [],
      indexing: [],
      "idle-after": []
    }
    const model = new Set<string>()
    const one = (i: number, phase: Phase | undefined) =>
      Effect.gen(function*() {
        const t = now()
        const answer = yield* search.search(requests[i % requests.length])
        const ms = elapsedMs(t)
        if (answer.results.length === 0) throw new Error(`no results for "${queries[i % queries.length]}"`)
        model.add(answer.model)
        if (phase !== undefined) {
          times[phase].push(ms)
          // Paced like an API's traffic: one search every `interval` ms, not back to back.
          yield* Effect.sleep(Duration.millis(Math.max(0, interval - ms)))
        }
      })
    // Warm-up: every query vector into the query cache, the index into memory.
    for (let i = 0; i < requests.length; i++) yield* one(i, undefined)
    for (let i = 0; i < 2 * requests.length; i++) yield* one(i, "idle-before")

    // The shadow build: the real CLI in its own process, configured like this one.
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "autoembed-bench-sets-"))
    const configPath = Path.join(dir, "autoembed.config.json")
    Fs.writeFileSync(configPath, JSON.stringify({ sources: { [SOURCE]: SOURCE_CONFIG } }))
    const shadow = `${SOURCE}@shadow`
    const args = [
      "--import",
      "tsx",
      "--conditions=source",
      Path.join(repoRoot, "packages/cli/src/bin.ts"),
      "sets",
      "add",
      SOURCE,
      "--provider",
      "local",
      "--model",
      LOCAL_MODEL,
      "--dimensions",
      String(dims),
      "--name",
      shadow,
      "--wait"
    ]
    const watcher = new pg.Client({ connectionString: url })
    yield* Effect.promise(() => watcher.connect())
    let phase: Phase = "startup"
    let addedAt: number | undefined
    let indexingAt: number | undefined
    const t0 = now()
    const child = spawn(process.execPath, args, {
      cwd: repoRoot,
      env: {
        ...process.env,
        DATABASE_URL: url,
        EMBEDDING_PROVIDER: "local",
        EMBEDDING_DIMENSIONS: String(dims),
        AUTOEMBED_CONFIG: configPath,
        AUTOEMBED_BUILTIN: "false",
        AUTOEMBED_LOG_LEVEL: "warning",
        // The CLI takes the bulk path from 20,000 rows; a smaller --rows keeps the same path.
        AUTOEMBED_BULK_THRESHOLD: String(Math.min(20_000, rows))
      },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    child.stdout.on("data", (d) => (output += d))
    child.stderr.on("data", (d) => (output += d))
    let exitCode: number | null | undefined
    const exited = new Promise<void>((resolve) =>
      child.once("exit", (code) => {
        exitCode = code
        resolve()
      })
    )
    // What the shadow build is doing, every 250 ms.
    const poll = setInterval(() => {
      void watcher.query(
        `SELECT EXISTS (SELECT 1 FROM autoembed.sets WHERE name = $1) AS added,
           EXISTS (SELECT 1 FROM pg_stat_progress_create_index p JOIN pg_class c ON c.oid = p.relid
                   WHERE c.relname <> 'messages') AS indexing`,
        [shadow]
      ).then((r) => {
        const s = r.rows[0] as { added: boolean; indexing: boolean }
        if (s.added && addedAt === undefined) addedAt = elapsedMs(t0) / 1000
        if (s.indexing && indexingAt === undefined) indexingAt = elapsedMs(t0) / 1000
        if (exitCode === undefined) phase = indexingAt !== undefined ? "indexing" : s.added ? "embedding" : "startup"
      }, () => undefined)
    }, 250)
    let i = 0
    while (exitCode === undefined) yield* one(i++, phase)
    yield* Effect.promise(() => exited)
    clearInterval(poll)
    const childSeconds = elapsedMs(t0) / 1000
    yield* Effect.promise(() => watcher.end())
    Fs.rmSync(dir, { recursive: true, force: true })
    if (exitCode !== 0) throw new Error(`pnpm cli sets add exited ${exitCode}:\n${output}`)
    const report = yield* (yield* EmbeddingSets).get(SOURCE, shadow)
    if (report.embedded !== rows || !report.index.exists) {
      throw new Error(`the shadow set is not complete: ${JSON.stringify(report)}`)
    }
    for (let k = 0; k < 2 * requests.length; k++) yield* one(k, "idle-after")
    const stats = (xs: ReadonlyArray<number>) => ({ n: xs.length, p50: percentile(xs, 50), p95: percentile(xs, 95) })
    const idle = [...times["idle-before"], ...times["idle-after"]]
    const during = [...times.embedding, ...times.indexing]
    return {
      childSeconds,
      addedAtSeconds: addedAt ?? NaN,
      indexingAtSeconds: indexingAt ?? NaN,
      models: [...model],
      idle: stats(idle),
      during: stats(during),
      byPhase: Object.fromEntries(Object.entries(times).map(([k, v]) => [k, stats(v)])),
      cliTail: output.trim().split("\n").slice(-3).join("\n")
    }
  })

// ---------------------------------------------------------------------------------------------

export const main = async (args: ReadonlyArray<string> = []) => {
  const rows = numberFlag(args, "rows", 100_000)
  const runs = numberFlag(args, "runs", 2)
  const dims = numberFlag(args, "dims", 1024)
  const bDims = numberFlag(args, "b-dims", dims)
  const nQueries = numberFlag(args, "queries", 200)
  const withSearch = flagValue(args, "search", "on") !== "off"
  const logStatements = args.includes("--log-statements")
  const interval = numberFlag(args, "search-interval-ms", 100)
  const rebuilds = numberFlag(args, "rebuilds", 0)
  const started = Date.now()
  console.log(
    `sets: ${fmt(rows, 0)} rows of a declared source (a user's messages table), Local provider, ` +
      `configured set ${dims}-d, set B ${bDims}-d; ${runs} runs, arm order alternating; ${describeServer()}`
  )
  const queries = queryTexts(nQueries)
  const results: Array<{
    run: number
    order: string
    loadavg: Array<number>
    plain: Arm
    set: Arm & { addSeconds: number }
    ratio: number
    rebuilt: Record<string, Array<number>>
  }> = []
  let search: Effect.Effect.Success<ReturnType<typeof shadowBuildWithSearches>> | undefined
  for (let run = 1; run <= runs; run++) {
    const scratch = await createScratchDatabase("sets")
    try {
      if (logStatements) await logEveryStatement(scratch.name)
      const t = now()
      await seed(scratch.url, rows, dims)
      note(`run ${run}: seeded ${fmt(rows, 0)} rows in ${fmt(elapsedMs(t) / 1000, 1)} s`)
      const plainFirst = run % 2 === 1
      const last = run === runs
      const outcome = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
        const context = yield* Layer.build(layerFor(scratch.url, dims))
        return yield* Effect.gen(function*() {
          const sets = yield* EmbeddingSets
          const configured = (yield* sets.list(SOURCE)).find((s) => s.configured)!.name
          const name = `${SOURCE}@b${run}`
          let plain: Arm | undefined
          let set: (Arm & { addSeconds: number }) | undefined
          for (const arm of plainFirst ? ["plain", "set"] : ["set", "plain"]) {
            if (arm === "plain") plain = yield* plainArm(configured, rows)
            else set = yield* setArm(name, bDims, rows)
            yield* vacuum
          }
          const again: Record<string, Array<number>> = { plain: [], set: [] }
          const index = yield* VectorIndex
          const targets = {
            plain: sets.targetOf((yield* (yield* SetRegistry).find(SOURCE, configured)).row),
            set: sets.targetOf((yield* (yield* SetRegistry).find(SOURCE, name)).row)
          }
          for (let k = 0; k < rebuilds; k++) {
            for (const which of ["set", "plain"] as const) {
              const target = targets[which]
              const copy = `${target.index.name.slice(0, 50)}_again`
              const t = now()
              yield* index.build(target, { name: copy })
              again[which].push(elapsedMs(t) / 1000)
              yield* sqlDrop(target.index.schema, copy)
            }
          }
          if (rebuilds > 0) {
            note(
              `run ${run}: index build again, set ${again.set.map((x) => fmt(x, 1)).join(", ")} s; plain ${
                again.plain.map((x) => fmt(x, 1)).join(", ")
              } s`
            )
          }
          let fig2
          if (last && withSearch) {
            yield* sets.drop(SOURCE, name)
            fig2 = yield* shadowBuildWithSearches(scratch.url, dims, queries, rows, interval)
          }
          return { plain: plain!, set: set!, fig2, again }
        }).pipe(Effect.provide(context))
      })))
      const r = {
        run,
        order: plainFirst ? "plain, set" : "set, plain",
        loadavg: Os.loadavg(),
        plain: outcome.plain,
        set: outcome.set,
        ratio: outcome.set.seconds / outcome.plain.seconds,
        rebuilt: outcome.again
      }
      results.push(r)
      if (outcome.fig2) search = outcome.fig2
      note(
        `run ${run} (${r.order}): set ${fmt(r.set.seconds, 1)} s (add ${fmt(r.set.addSeconds, 1)}, queue ${
          fmt(r.set.queueSeconds, 1)
        }, load ${fmt(r.set.loadSeconds, 1)}, index ${fmt(r.set.buildSeconds, 1)}) ÷ plain ${
          fmt(r.plain.seconds, 1)
        } s (queue ${fmt(r.plain.queueSeconds, 1)}, load ${fmt(r.plain.loadSeconds, 1)}, index ${
          fmt(r.plain.buildSeconds, 1)
        }) = ${fmt(r.ratio)}; load average ${r.loadavg.map((x) => x.toFixed(1)).join(" ")}`
      )
    } finally {
      await scratch.drop()
    }
  }
  const ratio = summarize(results.map((r) => r.ratio))
  figure(
    `sets.add: ${fmt(rows, 0)} rows, time from sets add to a complete set (bulk, ${bDims}-d, index included) ÷ ` +
      `plain bulk backfill of the same source (${dims}-d) = ${fmtSummary(ratio)}; set ${
        fmt(summarize(results.map((r) => r.set.seconds)).median, 1)
      } s vs plain ${fmt(summarize(results.map((r) => r.plain.seconds)).median, 1)} s (medians); ${
        goal(ratio.median <= 1.2)
      } (≤ 1.2); postgres`
  )
  if (search) {
    const p50 = search.during.p50 / search.idle.p50
    const p95 = search.during.p95 / search.idle.p95
    figure(
      `sets.search: vector search p50 on the active set while a shadow set builds ÷ idle = ${fmt(p50)} (${
        fmt(search.during.p50)
      } vs ${fmt(search.idle.p50)} ms; p95 ${fmt(search.during.p95)} vs ${fmt(search.idle.p95)} ms = ${
        fmt(p95)
      }); ${search.during.n} vs ${search.idle.n} searches; reported`
    )
    for (const [phase, s] of Object.entries(search.byPhase)) {
      note(`search ${phase}: ${s.n} searches, p50 ${fmt(s.p50)} ms, p95 ${fmt(s.p95)} ms`)
    }
    note(
      `shadow build by the CLI: ${fmt(search.childSeconds, 1)} s from spawn (set recorded at ${
        fmt(search.addedAtSeconds, 1)
      } s, index build from ${fmt(search.indexingAtSeconds, 1)} s)`
    )
  }
  const totalSeconds = (Date.now() - started) / 1000
  note(`sets bench: ${fmt(totalSeconds, 0)} s in total`)
  writeResult("sets", { rows, dims, bDims, runs, queries: nQueries, ratio, results, search, totalSeconds })
  return { ratio, results, search }
}

runIfMain(import.meta.url, main)
