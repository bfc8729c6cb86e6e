import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as AutoEmbed from "../packages/core/src/AutoEmbed.js"
import type { SourceConfigInput } from "../packages/core/src/config/SourceConfig.js"
import { EmbeddingQueue } from "../packages/core/src/pipeline/EmbeddingQueue.js"
import { Status } from "../packages/core/src/pipeline/Status.js"
import { pollUntil } from "./support/Pipeline.js"
import { startCli, stop, waitFor as waitForAsync } from "./support/Processes.js"
import { serverUrl, tier } from "./support/TestDatabase.js"
import { openTierDatabase, tierQuery } from "./support/Tier.js"

/**
 * The fleet seen from the database (issue 21): worker processes write heartbeats, throughput and
 * freshness (a row's change to its vector) are read from the bookkeeping, so a process without
 * workers reports the workers of other processes.
 */
let database: Awaited<ReturnType<typeof openTierDatabase>>
const exec = (statements: string) => tierQuery(database, statements)

beforeAll(async () => {
  database = await openTierDatabase()
  await exec(
    `CREATE EXTENSION IF NOT EXISTS vector; CREATE TABLE notes (id bigserial PRIMARY KEY, body text NOT NULL);`
  )
}, 60_000)
afterAll(async () => {
  await database?.drop()
})

const notes: SourceConfigInput = { table: "notes", text: "body" }

const run = <A, E>(program: Effect.Effect<A, E, AutoEmbed.AutoEmbedServices | EmbeddingQueue>, workers: boolean) =>
  Effect.runPromise(Effect.scoped(Effect.provide(
    program,
    AutoEmbed.layer({
      env: false,
      workers,
      config: { provider: "local", dimensions: 32, sweepIntervalMs: 300, batchWindowMs: 5, ...database.config },
      sources: { notes }
    }) as Layer.Layer<AutoEmbed.AutoEmbedServices | EmbeddingQueue, AutoEmbed.AutoEmbedStartupError>
  )))

const report = Effect.flatMap(Status, (s) => s.report())

describe(`the fleet from the database (${tier()})`, () => {
  it("rows changed while no worker ran are as old as they waited; the worker is listed while it runs", async () => {
    // Installed (triggers) by a process without workers, then written by SQL while nothing embeds:
    // their vectors come at least 1.5 s after the change.
    await run(Effect.void, false)
    await exec(`INSERT INTO notes (body) SELECT 'waiting note ' || g FROM generate_series(1, 40) g`)
    await new Promise((resolve) => setTimeout(resolve, 1500))
    const seen = await run(
      Effect.gen(function*() {
        const queue = yield* EmbeddingQueue
        const done = yield* pollUntil(
          "the notes to be embedded",
          Effect.map(report, (r) => r.sources.notes.embedded === 40 && r.sources.notes.pending === 0 ? r : undefined),
          60_000
        )
        // New rows while the worker runs: fresh within moments.
        const sql = yield* SqlClient.SqlClient
        yield* sql`INSERT INTO notes (body) SELECT 'live note ' || g FROM generate_series(1, 10) g`
        const after = yield* pollUntil(
          "the live notes to be embedded",
          Effect.map(report, (r) => r.sources.notes.embedded === 50 ? r : undefined),
          60_000
        )
        return { done, after, workerId: queue.workerId }
      }),
      true
    )
    expect(seen.done.workers.map((w) => [w.workerId, w.pid])).toEqual([[seen.workerId, process.pid]])
    expect(seen.done.workers[0].sets).toEqual(["notes"])
    expect(seen.done.freshness.notes.samples).toBe(40)
    expect(seen.done.freshness.notes.p50Seconds).toBeGreaterThanOrEqual(1.5)
    expect(seen.after.freshness.notes.samples).toBe(50)
    expect(seen.after.throughput.series.reduce((n, s) => n + s.embedded, 0)).toBe(50)
    expect(seen.after.throughput.last5MinutesPerSecond).toBeGreaterThan(0)
    expect(seen.after.notes.join("\n")).not.toMatch(/no embedding workers/)

    // A process without workers, after the worker stopped: it left the table on its way out.
    const later = await run(report, false)
    expect(later.workers).toEqual([])
    expect(later.notes).toContain("no embedding workers are running on this database (pnpm cli worker runs them)")
    // Throughput is the database's: this process embedded nothing and still reports the 50 rows.
    expect(later.throughput.series.reduce((n, s) => n + s.embedded, 0)).toBe(50)
    expect(later.totals.embedded).toBe(0)
  }, 120_000)

  it.skipIf(!serverUrl())("a process without workers lists a worker running in another process", async () => {
    const configFile = Path.join(
      Fs.mkdtempSync(Path.join(Os.tmpdir(), "autoembed-fleet-cfg-")),
      "autoembed.config.json"
    )
    Fs.writeFileSync(configFile, JSON.stringify({ sources: { notes } }))
    const { child: worker, output } = startCli(["worker"], {
      DATABASE_URL: database.url!,
      AUTOEMBED_CONFIG: configFile,
      EMBEDDING_PROVIDER: "local",
      EMBEDDING_DIMENSIONS: "32"
    })
    try {
      let seen: Effect.Effect.Success<typeof report> | undefined
      await waitForAsync(
        async () => {
          seen = await run(report, false)
          return seen.workers.length === 1
        },
        60_000,
        "the worker's heartbeat"
      ).catch((e) => {
        throw new Error(`${e}: ${output.stderr}`)
      })
      expect(seen!.workers[0].pid).toBe(worker.pid)
      expect(seen!.workers[0].host).toBe(Os.hostname())
      expect(seen!.queue.running).toBe(false)
      await stop(worker)
      const gone = await run(report, false)
      expect(gone.workers).toEqual([])
    } finally {
      if (worker.exitCode === null) await stop(worker, "SIGKILL")
    }
  }, 120_000)
})
