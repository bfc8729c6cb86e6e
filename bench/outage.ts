/**
 * What a database outage costs the workers (PostgreSQL only): seconds of stall beyond the outage
 * itself, and rows embedded twice.
 *
 * N rows are queued, the workers (EmbeddingQueue, 4 × 32 rows, a provider answering each batch
 * after 50 ms) start on them, and once a fifth is embedded every connection between the workers
 * and PostgreSQL is cut for D seconds by a TCP proxy (test/support/FaultProxy.ts), as a restart
 * does. The test's own client goes straight to the server.
 *
 *   stall        = time from the end of the outage until the queue is empty
 *                  − the time the rows left at the cut need at the rate measured before it
 *   re-embedded  = texts sent to the provider − N
 *
 * Before the fix, failed batches kept their leases (AUTOEMBED_LEASE_SECONDS, 120 s) and the rows
 * whose vectors were computed but not written were embedded again after it.
 *
 *   pnpm bench outage [--rows 20000] [--outage-seconds 10]
 */
import { EmbeddingQueue, makeLocalProvider } from "@autoembed/core"
import { Duration, Effect, Layer, Option, Redacted } from "effect"
import pg from "pg"
import { startFaultProxy } from "../test/support/FaultProxy.js"
import {
  createScratchDatabase,
  describeServer,
  figure,
  fmt,
  note,
  numberFlag,
  runIfMain,
  storeLayer,
  writeResult
} from "./lib.js"

const DIMS = 64

export const main = async (args: ReadonlyArray<string>) => {
  const rows = numberFlag(args, "rows", 20_000)
  const outageMs = numberFlag(args, "outage-seconds", 10) * 1000
  const scratch = await createScratchDatabase("outage")
  const proxy = await startFaultProxy(scratch.url)
  const direct = new pg.Client({ connectionString: scratch.url })
  let sent = 0
  const local = makeLocalProvider(DIMS)
  const provider = {
    ...local,
    embed: (texts: ReadonlyArray<string>, kind: "document" | "query") =>
      Effect.sleep(Duration.millis(50)).pipe(
        Effect.zipRight(Effect.sync(() => (sent += texts.length))),
        Effect.zipRight(local.embed(texts, kind))
      )
  }
  const workers = EmbeddingQueue.Default.pipe(
    Layer.provideMerge(
      storeLayer({
        databaseUrl: Option.some(Redacted.make(proxy.url)),
        dimensions: DIMS,
        batchSize: 32,
        concurrency: 4
      }, provider)
    )
  )
  const count = async (query: string) => Number((await direct.query(query)).rows[0].n)
  const embedded = () => count("SELECT count(*) AS n FROM messages WHERE embedding IS NOT NULL")
  const queued = () => count("SELECT count(*) AS n FROM autoembed.queue")
  const waitFor = async (check: () => Promise<boolean>) => {
    while (!(await check())) await new Promise((r) => setTimeout(r, 50))
  }
  try {
    console.log(
      `  ${describeServer()}, ${rows} rows, a ${outageMs / 1000} s outage after ${Math.round(rows / 5)} are embedded`
    )
    const result = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      yield* Layer.build(workers)
      return yield* Effect.promise(async () => {
        await direct.connect()
        const started = Date.now()
        await direct.query(
          `INSERT INTO messages (content) SELECT 'outage benchmark message ' || g FROM generate_series(1, ${rows}) g`
        )
        await waitFor(async () => (await embedded()) >= rows / 5)
        const before = await embedded()
        const rate = before / ((Date.now() - started) / 1000)
        await proxy.cut(outageMs)
        const restored = Date.now()
        const left = rows - (await embedded())
        await waitFor(async () => (await queued()) === 0)
        const drainS = (Date.now() - restored) / 1000
        const expectedS = left / rate
        return {
          rate,
          left,
          drainS,
          expectedS,
          stallS: Math.max(0, drainS - expectedS),
          reEmbedded: sent - rows,
          done: await embedded()
        }
      })
    })))
    figure(
      `outage: ${fmt(result.stallS, 1)} s of stall after a ${
        outageMs / 1000
      } s outage, ${result.reEmbedded} rows embedded twice (of ${rows}; ${result.done} embedded)`
    )
    note(
      `rate before the cut ${fmt(result.rate, 0)} rows/s; ${result.left} rows left at the restore took ${
        fmt(result.drainS, 1)
      } s (${fmt(result.expectedS, 1)} s at that rate)`
    )
    writeResult("outage", { rows, outageMs, ...result })
  } finally {
    await direct.end().catch(() => undefined)
    await proxy.close()
    await scratch.drop()
  }
}

runIfMain(import.meta.url, main)
