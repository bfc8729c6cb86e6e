import { describe, expect, layer } from "@effect/vitest"
import { Duration, Effect, Layer, Option, Redacted } from "effect"
import pg from "pg"
import { EmbeddingQueue } from "../packages/core/src/pipeline/EmbeddingQueue.js"
import { makeLocalProvider } from "../packages/core/src/providers/LocalProvider.js"
import { type FaultProxy, startFaultProxy } from "./support/FaultProxy.js"
import { pipelineLayer } from "./support/Pipeline.js"
import { createScratchDatabase, serverUrl } from "./support/TestDatabase.js"

/**
 * Database outages, on the server tier: the workers reach PostgreSQL through a proxy that cuts
 * every connection for a few seconds, as a restart or a network blip does. PGlite runs in-process
 * and cannot lose its connection.
 */
const DIMS = 64
const ROWS = 3000
const local = makeLocalProvider(DIMS)
let sent = 0
/** The Local provider, slowed so that batches are in flight when the cut comes, counting what it is sent. */
const slowProvider = {
  ...local,
  embed: (texts: ReadonlyArray<string>, kind: "document" | "query") =>
    Effect.sleep(Duration.millis(30)).pipe(
      Effect.zipRight(Effect.sync(() => (sent += texts.length))),
      Effect.zipRight(local.embed(texts, kind))
    )
}

let proxy: FaultProxy
let direct: pg.Client

const Live = Layer.unwrapScoped(
  Effect.gen(function*() {
    const { url } = yield* createScratchDatabase
    proxy = yield* Effect.acquireRelease(
      Effect.promise(() => startFaultProxy(url)),
      (p) => Effect.promise(() => p.close())
    )
    // The test's own observations and writes go straight to the server, never through the cut.
    direct = yield* Effect.acquireRelease(
      Effect.promise(async () => {
        const client = new pg.Client({ connectionString: url })
        await client.connect()
        return client
      }),
      (c) => Effect.promise(() => c.end())
    )
    return pipelineLayer({
      provider: slowProvider,
      overrides: {
        databaseUrl: Option.some(Redacted.make(proxy.url)),
        dimensions: DIMS,
        batchSize: 20,
        concurrency: 2,
        // Wake-ups must come from LISTEN, not from a poll or a sweep that happens to run.
        pollIntervalMs: 10_000,
        sweepIntervalMs: 600_000
      }
    })
  })
)

const count = async (query: string) => Number((await direct.query(query)).rows[0].n)
const embedded = () => count("SELECT count(*) AS n FROM messages WHERE embedding IS NOT NULL")

const until = async (what: string, check: () => Promise<boolean>, timeoutMs: number) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

describe.skipIf(serverUrl() === undefined)("database outages (postgres, through a fault-injecting proxy)", () => {
  layer(Live, { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("a 3 s cut mid-backlog: every row embedded, none waits for its lease, nothing embedded twice", () =>
      Effect.promise(async () => {
        await direct.query(
          `INSERT INTO messages (content) SELECT 'outage backlog message ' || g FROM generate_series(1, ${ROWS}) g`
        )
        await until("the backlog to be under way", async () => (await embedded()) >= 300, 60_000)
        const connections = proxy.accepted()
        await proxy.cut(3000)
        const restored = Date.now()
        await until(
          "the backlog to drain",
          async () => (await count("SELECT count(*) AS n FROM autoembed.queue")) === 0,
          60_000
        )
        const drainedAfterMs = Date.now() - restored
        expect(await embedded()).toBe(ROWS)
        // The lease is 120 s: finishing within 30 s means no row waited for it.
        expect(drainedAfterMs).toBeLessThan(30_000)
        // Vectors computed before the cut were written after it, not paid for again.
        expect(sent).toBeLessThanOrEqual(ROWS * 1.01)
        expect(proxy.accepted()).toBeGreaterThan(connections)
      }))

    it.effect("LISTEN comes back after the cut: a new row is embedded in under 0.5 s without a poll", () =>
      Effect.gen(function*() {
        const queue = yield* EmbeddingQueue
        yield* Effect.promise(() => proxy.cut(2000))
        const deadline = Date.now() + 30_000
        while (!(yield* queue.stats).listening) {
          if (Date.now() > deadline) throw new Error("LISTEN did not reconnect within 30 s")
          yield* Effect.sleep(Duration.millis(25))
        }
        // Polls come every 10 s here; twice in a row under 0.5 s is the notification, not luck.
        for (const attempt of [1, 2]) {
          const started = Date.now()
          const { rows } = yield* Effect.promise(() =>
            direct.query(`INSERT INTO messages (content) VALUES ('after the outage ${attempt}') RETURNING id`)
          )
          yield* Effect.promise(() =>
            until(
              "the new row's vector",
              async () =>
                (await count(
                  `SELECT count(*) AS n FROM messages WHERE id = ${Number(rows[0].id)} AND embedding IS NOT NULL`
                )) === 1,
              10_000
            )
          )
          expect(Date.now() - started).toBeLessThan(500)
        }
      }))
  })
})
