import * as SqlClient from "@effect/sql/SqlClient"
import { PGlite } from "@electric-sql/pglite"
import { vector } from "@electric-sql/pglite-pgvector"
import { Effect, Exit, Option, Redacted, Scope } from "effect"
import { spawn, spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { layer as autoEmbedLayer } from "../packages/core/src/AutoEmbed.js"
import { startFakeProviderServer } from "./fakes/FakeProviderServer.js"
import { repoRoot, startCli, waitFor } from "./support/Processes.js"
import { createScratchDatabase, serverUrl, tier } from "./support/TestDatabase.js"

const PROBE = "autoembed probe"
/** The bound under test; every scenario must end well inside it (a batch at the slow provider takes 1.5 s). */
const DRAIN_MS = 8000
const BACKLOG = 3000

const hasPnpm = spawnSync("pnpm", ["--version"], { stdio: "ignore" }).status === 0

/**
 * A worker process stopped in the middle of a slow-provider backlog, on this test tier: by two
 * SIGTERMs, by the death of its parent, and through `pnpm cli worker`. Each time it must leave
 * within the drain bound, gracefully (no hard exit), with no row still locked.
 */
describe(`graceful shutdown in the middle of a slow-provider backlog (${tier()})`, () => {
  const scope = Effect.runSync(Scope.make())
  const dataDir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "autoembed-shutdown-"))
  const fake = startFakeProviderServer()
  let database: string | undefined
  let env: Record<string, string> = {}

  beforeAll(async () => {
    const server = await fake
    database = serverUrl() ? (await Effect.runPromise(Scope.extend(createScratchDatabase, scope))).url : undefined
    env = {
      ...(database ? { DATABASE_URL: database } : { AUTOEMBED_DATA_DIR: dataDir, DATABASE_URL: "" }),
      EMBEDDING_PROVIDER: "openai",
      OPENAI_API_KEY: "sk-shutdown-test",
      OPENAI_BASE_URL: server.openaiBaseUrl,
      EMBEDDING_MODEL: "text-embedding-3-small",
      EMBEDDING_DIMENSIONS: "64",
      AUTOEMBED_BATCH_SIZE: "10",
      AUTOEMBED_CONCURRENCY: "2",
      AUTOEMBED_DRAIN_TIMEOUT_MS: String(DRAIN_MS)
    }
    // The backlog: rows written with the triggers on, so each is queued (pending) for the worker.
    await Effect.runPromise(
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`INSERT INTO messages (content)
          SELECT 'shutdown backlog message ' || g FROM generate_series(1, ${BACKLOG}) g`
      }).pipe(
        Effect.provide(autoEmbedLayer({
          env: false,
          workers: false,
          config: {
            ...(database ? { databaseUrl: Option.some(Redacted.make(database)) } : { dataDir }),
            provider: "openai",
            openaiApiKey: Option.some(Redacted.make("sk-shutdown-test")),
            openaiBaseUrl: Option.some(server.openaiBaseUrl),
            model: Option.some("text-embedding-3-small"),
            dimensions: 64
          }
        })),
        Effect.scoped
      )
    )
  }, 120_000)

  afterAll(async () => {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await (await fake).close()
    Fs.rmSync(dataDir, { recursive: true, force: true })
  })

  /** One query on the tier's database; on PGlite only while no worker holds the directory. */
  const queueState = async () => {
    const text = `SELECT count(*) FILTER (WHERE locked_until > now())::int AS locked, count(*)::int AS queued,
      (SELECT count(*)::int FROM messages WHERE embedding IS NOT NULL) AS embedded FROM autoembed.queue`
    if (database) {
      const client = new pg.Client({ connectionString: database })
      await client.connect()
      try {
        return (await client.query(text)).rows[0] as { locked: number; queued: number; embedded: number }
      } finally {
        await client.end()
      }
    }
    const db = await PGlite.create({ dataDir, extensions: { vector } })
    try {
      return (await db.query<{ locked: number; queued: number; embedded: number }>(text)).rows[0]
    } finally {
      await db.close()
    }
  }

  /** Resolves once batches have come back from the slow provider: the worker is mid-backlog, with more in flight. */
  const midBacklog = async () => {
    const server = await fake
    server.reset({ latencyMs: 1500 })
    return async () =>
      waitFor(
        async () =>
          server.embedRequests("openai").filter((r) => r.status === 200 && !r.inputs.includes(PROBE)).length >= 2,
        90_000,
        "batches at the provider"
      )
  }

  /** Some rows were embedded, the backlog is not done, and nothing stays locked. */
  const expectReleased = async (before: { embedded: number }) => {
    const after = await queueState()
    expect(after.locked).toBe(0)
    expect(after.embedded).toBeGreaterThan(before.embedded)
    expect(after.queued).toBeGreaterThan(0)
    return after
  }

  it(
    "two SIGTERMs 200 ms apart: one drain, the second logged and ignored, exit 0 within the bound, no row locked",
    async () => {
      const before = await queueState()
      const started = await midBacklog()
      const worker = startCli(["worker"], env)
      await started()
      const signalled = Date.now()
      worker.child.kill("SIGTERM")
      await new Promise((r) => setTimeout(r, 200))
      worker.child.kill("SIGTERM")
      const code = await worker.exited
      const tookMs = Date.now() - signalled
      expect(code, worker.output.stderr).toBe(0)
      expect(tookMs).toBeLessThan(DRAIN_MS)
      expect(worker.output.stdout).toMatch(/SIGTERM: stopping/)
      expect(worker.output.stderr).toMatch(/SIGTERM again: already shutting down/)
      expect(worker.output.stderr).not.toMatch(/did not finish/)
      await expectReleased(before)
    },
    180_000
  )

  it("the server with workers (`pnpm start`'s program): two SIGTERMs, one drain, exit 0, no row locked", async () => {
    const before = await queueState()
    const started = await midBacklog()
    const server = spawn(process.execPath, ["--import", "tsx", "--conditions=source", "packages/api/src/main.ts"], {
      cwd: repoRoot,
      env: {
        ...process.env,
        ...env,
        HOST: "127.0.0.1",
        PORT: "0",
        AUTOEMBED_SAMPLE_DATA: "false",
        AUTOEMBED_LOG_LEVEL: "info"
      },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    server.stdout!.on("data", (d) => (output += String(d)))
    server.stderr!.on("data", (d) => (output += String(d)))
    const exited = new Promise<number | null>((resolve) => server.once("exit", (code) => resolve(code)))
    await started()
    const signalled = Date.now()
    server.kill("SIGTERM")
    await new Promise((r) => setTimeout(r, 200))
    server.kill("SIGTERM")
    expect(await exited, output).toBe(0)
    expect(Date.now() - signalled).toBeLessThan(DRAIN_MS)
    expect(output).toMatch(/"message":"SIGTERM: shutting down/)
    expect(output).toMatch(/"message":"SIGTERM again: already shutting down"/)
    expect(output).toMatch(/"message":"autoembed stopped"/)
    await expectReleased(before)
  }, 180_000)

  it("a worker whose parent dies (SIGKILL) shuts down as on SIGTERM instead of running on as an orphan", async () => {
    const before = await queueState()
    const started = await midBacklog()
    // A parent that is not the test: the worker shares its stdout pipe, which closes only when the worker has
    // exited too.
    const launcher = `const { spawn } = require("node:child_process");
      spawn(process.execPath, ["--import", "tsx", "--conditions=source", "packages/cli/src/bin.ts", "worker"],
        { stdio: "inherit" });
      setInterval(() => {}, 1000)`
    const parent = spawn(process.execPath, ["-e", launcher], {
      cwd: repoRoot,
      env: { ...process.env, AUTOEMBED_LOG_LEVEL: "warning", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    parent.stdout!.on("data", (d) => (output += String(d)))
    parent.stderr!.on("data", (d) => (output += String(d)))
    const pipeClosed = new Promise<void>((resolve) => parent.stdout!.once("close", resolve))
    await started()
    const killed = Date.now()
    parent.kill("SIGKILL")
    await pipeClosed
    const tookMs = Date.now() - killed
    expect(output).toMatch(/parent process exited: stopping/)
    expect(output).not.toMatch(/did not finish/)
    // Noticed within the 1 s poll, then drained like a SIGTERM.
    expect(tookMs).toBeLessThan(DRAIN_MS + 1000)
    await expectReleased(before)
  }, 180_000)

  it.skipIf(!hasPnpm)(
    "`pnpm cli worker`: SIGTERM to pnpm reaches the worker, pnpm waits for its drain and exits 0",
    async () => {
      const before = await queueState()
      const started = await midBacklog()
      const pnpm = spawn("pnpm", ["--silent", "cli", "worker"], {
        cwd: repoRoot,
        env: { ...process.env, AUTOEMBED_LOG_LEVEL: "warning", ...env },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let output = ""
      pnpm.stdout!.on("data", (d) => (output += String(d)))
      pnpm.stderr!.on("data", (d) => (output += String(d)))
      const exited = new Promise<number | null>((resolve) => pnpm.once("exit", (code) => resolve(code)))
      // Closed only when every process holding it (pnpm, the worker) has exited: no orphan keeps it open.
      const pipeClosed = new Promise<void>((resolve) => pnpm.stdout!.once("close", resolve))
      await started()
      const signalled = Date.now()
      pnpm.kill("SIGTERM")
      expect(await exited, output).toBe(0)
      await pipeClosed
      expect(Date.now() - signalled).toBeLessThan(DRAIN_MS)
      expect(output).toMatch(/SIGTERM: stopping/)
      await expectReleased(before)
    },
    180_000
  )
})
