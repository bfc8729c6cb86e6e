import { Effect } from "effect"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startFakeProviderServer } from "./fakes/FakeProviderServer.js"
import { startCli, stop, waitFor } from "./support/Processes.js"
import { createScratchDatabase, serverUrl } from "./support/TestDatabase.js"

const PROBE = "autoembed probe"

/** Several OS processes share one database: only a real server can host that, so this runs on the server tier. */
describe.skipIf(!serverUrl())("worker processes on one PostgreSQL database", () => {
  let url: string
  let release: () => Promise<void>
  let client: pg.Client
  let baseUrl = ""
  const fake = startFakeProviderServer()

  beforeAll(async () => {
    const { Scope, Exit } = await import("effect")
    const scope = Effect.runSync(Scope.make())
    const db = await Effect.runPromise(Scope.extend(createScratchDatabase, scope))
    url = db.url
    release = () => Effect.runPromise(Scope.close(scope, Exit.void))
    client = new pg.Client({ connectionString: url })
    await client.connect()
    baseUrl = (await fake).openaiBaseUrl
    // Migrate and create the schema once, before the workers race to start.
    const migrate = startCli(["migrate"], env("migrate"))
    expect(await migrate.exited, migrate.output.stderr).toBe(0)
  }, 120_000)

  afterAll(async () => {
    await client?.end()
    await release?.()
    await (await fake).close()
  })

  const env = (key: string) => ({
    DATABASE_URL: url,
    EMBEDDING_PROVIDER: "openai",
    OPENAI_API_KEY: key,
    OPENAI_BASE_URL: baseUrl,
    EMBEDDING_MODEL: "text-embedding-3-small",
    EMBEDDING_DIMENSIONS: "64",
    AUTOEMBED_BATCH_SIZE: "20",
    AUTOEMBED_CONCURRENCY: "2",
    AUTOEMBED_SWEEP_INTERVAL_MS: "500"
  })
  const count = async (q: string) => Number((await client.query(q)).rows[0].n)

  it("three workers embed 2,000 pending rows exactly once between them", async () => {
    const server = await fake
    server.reset({ latencyMs: 25 })
    await client.query(
      "INSERT INTO messages (content) SELECT 'multi-process message ' || g FROM generate_series(1, 2000) g"
    )
    const workers = ["worker-1", "worker-2", "worker-3"].map((k) =>
      startCli(["worker"], { ...env(k), OPENAI_BASE_URL: server.openaiBaseUrl })
    )
    try {
      await waitFor(
        async () => (await count("SELECT count(*) AS n FROM messages WHERE embedding IS NULL")) === 0,
        120_000,
        "all rows embedded"
      )
    } finally {
      await Promise.all(workers.map((w) => stop(w.child)))
    }
    const ok = server.embedRequests("openai").filter((r) => r.status === 200)
    const inputs = ok.flatMap((r) => r.inputs).filter((t) => t !== PROBE)
    // Provider input count equals row count: no row was embedded twice.
    expect(inputs.length).toBe(2000)
    expect(new Set(inputs).size).toBe(2000)
    const byWorker = new Set(ok.filter((r) => r.inputs[0] !== PROBE).map((r) => r.authorization))
    expect(byWorker.size).toBeGreaterThanOrEqual(2)
    expect(await count("SELECT count(*) AS n FROM autoembed.queue")).toBe(0)
    // A stop request is how a worker is meant to end: exit 0 after its drain.
    for (const w of workers) expect(await w.exited).toBe(0)
  }, 180_000)

  it("a worker killed with SIGKILL mid-work loses nothing: after a restart every row is embedded", async () => {
    const server = await fake
    server.reset({ latencyMs: 200 })
    server.requests.length = 0
    await client.query("DELETE FROM messages")
    await client.query(
      "INSERT INTO messages (content) SELECT 'killed worker message ' || g FROM generate_series(1, 400) g"
    )
    const leaseEnv = { AUTOEMBED_LEASE_SECONDS: "3", OPENAI_BASE_URL: server.openaiBaseUrl }
    const first = startCli(["worker"], { ...env("victim"), ...leaseEnv })
    await waitFor(
      async () => (await count("SELECT count(*) AS n FROM messages WHERE embedding IS NOT NULL")) >= 40,
      60_000,
      "some rows embedded"
    )
    await stop(first.child, "SIGKILL")
    const leased = await count("SELECT count(*) AS n FROM autoembed.queue WHERE locked_until > now()")
    expect(leased).toBeGreaterThan(0)
    const killedAt = Date.now()
    server.reset({ latencyMs: 0 })
    const second = startCli(["worker"], { ...env("survivor"), ...leaseEnv })
    try {
      await waitFor(
        async () => (await count("SELECT count(*) AS n FROM messages WHERE embedding IS NULL")) === 0,
        60_000,
        "all rows embedded after restart"
      )
    } finally {
      await stop(second.child)
    }
    expect(await count("SELECT count(*) AS n FROM autoembed.queue")).toBe(0)
    // Rows the killed worker held were free again once its lease ran out, not stuck.
    expect(Date.now() - killedAt).toBeLessThan(45_000)
  }, 180_000)
})
