/**
 * Shared helpers of the benchmark programs: scratch databases on the PostgreSQL server, the
 * autoembed layers for a chosen database, statistics, and the one-line figure format.
 * Benchmarks are programs, never tests: they print figures and write bench/results/<name>.json.
 */
import {
  ActiveModel,
  AutoEmbedConfig,
  type AutoEmbedConfigShape,
  EmbeddingProvider,
  type EmbeddingProviderShape,
  EmbeddingStore,
  Extraction,
  Fleet,
  makeDatabaseLayer,
  makeLocalProvider,
  PendingSignal,
  PipelineMetrics,
  ProviderCircuit,
  SetProviders,
  SetRegistry,
  type Source,
  Sources
} from "@autoembed/core"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer, Option, Redacted } from "effect"
import { createHash } from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import pg from "pg"
import { sourceSql } from "../packages/core/src/sources/SourceSql.js"
import { stateTables } from "../packages/core/src/storage/State.js"
import { rng } from "../test/fakes/FakeProviderServer.js"

export const repoRoot = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..")

/** The PostgreSQL server the figures use (scratch databases are created on it and dropped after). */
export const serverUrl = (): string => process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test"

export const describeServer = (): string => {
  const u = new URL(serverUrl())
  return `PostgreSQL at ${u.hostname}:${u.port || "5432"}`
}

const withDatabase = (url: string, database: string) => {
  const u = new URL(url)
  u.pathname = `/${database}`
  return u.toString()
}

const liveScratch = new Set<string>()
const liveDirs = new Set<string>()

const dropNow = async (name: string) => {
  const client = new pg.Client({ connectionString: serverUrl() })
  await client.connect()
  try {
    await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  } finally {
    await client.end()
  }
  liveScratch.delete(name)
}

let cleanupInstalled = false
const installCleanup = () => {
  if (cleanupInstalled) return
  cleanupInstalled = true
  const onSignal = (signal: NodeJS.Signals) => {
    const pending = [...liveScratch].map((n) => dropNow(n).catch(() => undefined))
    for (const d of liveDirs) Fs.rmSync(d, { recursive: true, force: true })
    void Promise.all(pending).finally(() => process.exit(signal === "SIGINT" ? 130 : 143))
  }
  process.once("SIGINT", onSignal)
  process.once("SIGTERM", onSignal)
}

export interface Scratch {
  readonly name: string
  readonly url: string
  readonly drop: () => Promise<void>
}

/** A throw-away database on the server; `drop` removes it (also on Ctrl-C). */
export const createScratchDatabase = async (label: string): Promise<Scratch> => {
  installCleanup()
  const name = `autoembed_bench_${label}_${process.pid}_${Math.random().toString(36).slice(2, 6)}`
  const client = new pg.Client({ connectionString: serverUrl() })
  await client.connect()
  try {
    await client.query(`CREATE DATABASE ${name}`)
  } finally {
    await client.end()
  }
  liveScratch.add(name)
  return { name, url: withDatabase(serverUrl(), name), drop: () => dropNow(name) }
}

/** A throw-away on-disk directory for an embedded (PGlite) database, like the default `.data/pglite`. */
export const createScratchDir = (label: string) => {
  installCleanup()
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), `autoembed-bench-${label}-`))
  liveDirs.add(dir)
  return {
    dir,
    drop: () => {
      Fs.rmSync(dir, { recursive: true, force: true })
      liveDirs.delete(dir)
    }
  }
}

export type DbKind = "postgres" | "pglite"

/** A database for one benchmark: a scratch database on the server, or a scratch PGlite directory. */
export const scratchTarget = async (kind: DbKind, label: string) => {
  if (kind === "postgres") {
    const s = await createScratchDatabase(label)
    return {
      kind,
      label: `${describeServer()} (scratch database)`,
      config: { databaseUrl: Option.some(Redacted.make(s.url)) } as Partial<AutoEmbedConfigShape>,
      url: s.url as string | undefined,
      drop: s.drop
    }
  }
  const d = createScratchDir(label)
  return {
    kind,
    label: "embedded PGlite on disk (scratch directory)",
    config: { databaseUrl: Option.none(), dataDir: d.dir } as Partial<AutoEmbedConfigShape>,
    url: undefined as string | undefined,
    drop: async () => d.drop()
  }
}

/**
 * Configuration, database, the built-in sources (installed by `Sources.layer`: autoembed's schema
 * and migrations, the built-in tables, triggers and indexes), the provider (Local unless given) and
 * its model key, the store, metrics, the pending signal and extraction: everything but workers. A
 * string instead of a provider is a fixed model key for programs that write synthetic vectors.
 */
export const storeLayer = (
  config: Partial<AutoEmbedConfigShape>,
  provider: EmbeddingProviderShape | string = makeLocalProvider(config.dimensions ?? 1024)
) => {
  const model: Layer.Layer<ActiveModel, never, EmbeddingProvider> = typeof provider === "string"
    ? ActiveModel.fixed(provider)
    : ActiveModel.Default
  const embedder = typeof provider === "string" ? makeLocalProvider(config.dimensions ?? 1024) : provider
  return Layer.mergeAll(
    EmbeddingStore.Default,
    PipelineMetrics.Default,
    Extraction.Default,
    Fleet.Default,
    ProviderCircuit.Default
  ).pipe(
    Layer.provideMerge(Layer.mergeAll(PendingSignal.Default, SetRegistry.Default, SetProviders.Default)),
    Layer.provideMerge(model),
    Layer.provideMerge(Layer.succeed(EmbeddingProvider, embedder)),
    Layer.provideMerge(Sources.layer),
    Layer.provideMerge(makeDatabaseLayer()),
    Layer.provideMerge(AutoEmbedConfig.make({ provider: "local", logLevel: "warning", ...config }))
  )
}

/**
 * The per-row baselines' write: one autocommitted statement per row that sets the source's vector
 * column and records the row in autoembed.rows (model, hash, full-text vector, time), the
 * bookkeeping EmbeddingStore.writeVectors writes for every row (without its hash guard).
 * Returns a function of one row; `vector` is pgvector's text form.
 */
export const perRowWriter = (source: Source) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const config = yield* AutoEmbedConfig
    if (source.storage.kind !== "column") {
      return yield* Effect.dieMessage(`${source.name} has no vector column of its own`)
    }
    const column = sql(source.storage.column)
    const rows = stateTables(sql, config.stateSchema).rows
    const { id, idType, table, text, tsvector } = sourceSql(sql)
    return (row: { readonly rowId: string; readonly vector: string; readonly model: string; readonly hash: string }) =>
      sql`
        WITH w AS (
          UPDATE ${table(source)} SET ${column} = ${row.vector}::vector WHERE ${id(source)} = ${row.rowId}::${
        idType(source)
      }
          RETURNING ${id(source)}::text AS ae_row, ${tsvector(source, text(source))} AS ae_tsv)
        INSERT INTO ${rows} (source, row_id, model, hash, tsv, embedded_at)
        SELECT ${source.name}, w.ae_row, ${row.model}, ${row.hash}, w.ae_tsv, now() FROM w
        ON CONFLICT (source, row_id) DO UPDATE SET model = EXCLUDED.model, hash = EXCLUDED.hash, tsv = EXCLUDED.tsv,
          embedded_at = EXCLUDED.embedded_at`
  })

// ---------------------------------------------------------------------------------------------
// Statistics and output

export interface Summary {
  readonly median: number
  readonly min: number
  readonly max: number
  readonly n: number
}

export const summarize = (xs: ReadonlyArray<number>): Summary => {
  const s = [...xs].sort((a, b) => a - b)
  const n = s.length
  const median = n === 0 ? NaN : n % 2 === 1 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
  return { median, min: s[0] ?? NaN, max: s[n - 1] ?? NaN, n }
}

/** Nearest-rank percentile (p in 0..100). */
export const percentile = (xs: ReadonlyArray<number>, p: number): number => {
  const s = [...xs].sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const rank = Math.ceil((p / 100) * s.length)
  return s[Math.min(s.length - 1, Math.max(0, rank - 1))]
}

export const fmt = (x: number, digits = 2): string => {
  if (!Number.isFinite(x)) return String(x)
  const abs = Math.abs(x)
  if (abs >= 1000) return Math.round(x).toLocaleString("en-US")
  if (abs >= 100) return x.toFixed(0)
  if (abs >= 10) return x.toFixed(Math.min(1, digits))
  return x.toFixed(digits)
}

/** "1.23 (min 1.10, max 1.40; 3 runs)" */
export const fmtSummary = (s: Summary, digits = 2, unit = ""): string =>
  s.n <= 1
    ? `${fmt(s.median, digits)}${unit} (1 run)`
    : `${fmt(s.median, digits)}${unit} (min ${fmt(s.min, digits)}, max ${fmt(s.max, digits)}; ${s.n} runs)`

export const goal = (met: boolean) => (met ? "goal MET" : "goal NOT MET")

/** Prints one figure on its own line. */
export const figure = (line: string) => console.log(`FIGURE ${line}`)

export const note = (line: string) => console.log(`  · ${line}`)

export const writeResult = (name: string, result: unknown) => {
  const dir = Path.join(repoRoot, "bench/results")
  Fs.mkdirSync(dir, { recursive: true })
  const file = Path.join(dir, `${name}.json`)
  Fs.writeFileSync(
    file,
    JSON.stringify(
      {
        benchmark: name,
        date: new Date().toISOString(),
        host: { cpus: Os.cpus().length, loadavg: Os.loadavg(), node: process.version },
        ...(result as object)
      },
      null,
      2
    ) + "\n"
  )
  console.log(`  wrote bench/results/${name}.json`)
}

// ---------------------------------------------------------------------------------------------
// Synthetic vectors

/** mulberry32 (the fake provider's seeded RNG): every variant of a benchmark sees the same vectors. */
export { rng }

/** Standard normal deviates (Box–Muller) from a uniform source. */
export const gaussian = (uniform: () => number) => () =>
  Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform())

export const normalize = (v: Array<number>): Array<number> => {
  let n = 0
  for (const x of v) n += x * x
  n = Math.sqrt(n) || 1
  return v.map((x) => x / n)
}

export const randomUnitVector = (dims: number, normal: () => number) => normalize(Array.from({ length: dims }, normal))

export const elapsedMs = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6
export const now = () => process.hrtime.bigint()

/**
 * The value of `--name` in a benchmark's arguments (`--name value` or `--name=value`), or the
 * fallback. node:util's parseArgs, not a hand-written scan; other flags are left to their bench.
 */
export const flagValue = (args: ReadonlyArray<string>, name: string, fallback: string): string => {
  const { values } = parseArgs({
    args: [...args],
    options: { [name]: { type: "string" } },
    strict: false,
    allowPositionals: true
  })
  const value = values[name]
  return typeof value === "string" ? value : fallback
}

/** A numeric flag; a value that is not a number stops the benchmark with one line naming the flag. */
export const numberFlag = (args: ReadonlyArray<string>, name: string, fallback: number): number => {
  const value = Number(flagValue(args, name, String(fallback)))
  if (!Number.isFinite(value)) throw new Error(`--${name} must be a number`)
  return value
}

/** Runs a benchmark's main when its file is executed directly (not imported by run.ts). */
/** Runs a benchmark's main when its file is executed directly rather than through bench/run.ts. */
export const runIfMain = (metaUrl: string, main: (args: ReadonlyArray<string>) => Promise<unknown>) => {
  if (!isMain(metaUrl)) return
  main(process.argv.slice(2)).then(() => process.exit(0), (e) => {
    console.error(e)
    process.exit(1)
  })
}

export const isMain = (metaUrl: string) =>
  process.argv[1] !== undefined && Path.resolve(process.argv[1]) === fileURLToPath(metaUrl)

/** A row of the write benchmarks' `messages` table: its id, the md5 of its content, a vector for it. */
export interface MessageVector {
  readonly rowId: string
  readonly hash: string
  readonly vector: ReadonlyArray<number>
}

/** Message i of the write benchmarks has this content plus i (seeded in SQL, hashed in messageVectors). */
export const BENCHMARK_MESSAGE_PREFIX = "benchmark message number "

/** N seeded random unit vectors for messages 1..N, with the hashes writeVectors' guard expects. */
export const messageVectors = (n: number, dims: number, seed: number): Array<MessageVector> => {
  const normal = gaussian(rng(seed))
  return Array.from({ length: n }, (_, i) => ({
    rowId: String(i + 1),
    hash: createHash("md5").update(`${BENCHMARK_MESSAGE_PREFIX}${i + 1}`).digest("hex"),
    vector: randomUnitVector(dims, normal)
  }))
}
