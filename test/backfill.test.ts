import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Backfill, type BackfillJob } from "../packages/core/src/pipeline/Backfill.js"
import { Status } from "../packages/core/src/pipeline/Status.js"
import { WorkerStatus } from "../packages/core/src/pipeline/WorkerStatus.js"
import { EmbeddingSets } from "../packages/core/src/sets/EmbeddingSets.js"
import { storeLayer } from "./support/Pipeline.js"
import { tier } from "./support/TestDatabase.js"

const DIMS = 32
const Live = Layer.mergeAll(Backfill.Default, Status.Default).pipe(
  Layer.provideMerge(WorkerStatus.none),
  // Status lists every embedding set.
  Layer.provideMerge(EmbeddingSets.Default),
  Layer.provideMerge(storeLayer({ dimensions: DIMS, batchSize: 100, concurrency: 2 }))
)

describe(`backfill (${tier()})`, () => {
  layer(Live, { timeout: 300_000, excludeTestServices: true })((it) => {
    it.effect(
      "dry run counts exactly and changes nothing; a run embeds everything; then nothing is pending",
      () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const backfill = yield* Backfill
          // An existing database: 5,000 rows that never went through a trigger, as a restore would leave them.
          yield* sql.withTransaction(Effect.gen(function*() {
            yield* sql`SET LOCAL session_replication_role = replica`
            yield* sql`INSERT INTO messages (content)
              SELECT 'archived chat message ' || g || ' about deploys' FROM generate_series(1, 3000) g`
            yield* sql`INSERT INTO atoms (type, title, content)
              SELECT 'insight', 'Atom ' || g, 'knowledge number ' || g FROM generate_series(1, 2000) g`
            // Three rows embedded by another model (stale) and two that failed earlier.
            yield* sql`UPDATE atoms SET embedding = array_fill(0.5::float4, ARRAY[${DIMS}]::int[])::vector
              WHERE id <= 3`
            yield* sql`INSERT INTO autoembed.rows (source, row_id, model, hash)
              SELECT 'atoms', id::text, 'ollama/old-model', 'x' FROM atoms WHERE id <= 3`
            yield* sql`INSERT INTO autoembed.queue (source, row_id, failed_at, attempts, last_error) VALUES
              ('messages', '1', now(), 5, 'InvalidInput: too long'),
              ('messages', '2', now(), 5, 'InvalidInput: too long')`
          }))
          const snapshot =
            yield* sql`SELECT count(*)::int AS q, (SELECT count(*)::int FROM messages WHERE embedding IS NOT NULL) AS e
              FROM autoembed.queue`
          const dry = yield* backfill.dryRun({ dryRun: true })
          // Counts by state; the token and cost estimate is tested in ledger.test.ts.
          expect(dry).toMatchObject({
            dryRun: true,
            entityTypes: {
              atoms: { missing: 1997, stale: 3, failed: 0 },
              messages: { missing: 2998, stale: 0, failed: 2 }
            },
            total: 4998
          })
          expect(dry.tokens).toBeGreaterThan(0)
          expect(dry.costUsd).toBe(0)
          const withFailed = yield* backfill.dryRun({ dryRun: true, includeFailed: true, entityTypes: ["messages"] })
          expect(withFailed).toMatchObject({
            dryRun: true,
            entityTypes: { messages: { missing: 2998, stale: 0, failed: 2 } },
            total: 3000
          })
          expect(Object.keys(withFailed.entityTypes)).toEqual(["messages"])
          expect(
            yield* sql`SELECT count(*)::int AS q, (SELECT count(*)::int FROM messages WHERE embedding IS NOT NULL) AS e
              FROM autoembed.queue`
          ).toEqual(snapshot)

          const progress: Array<BackfillJob> = []
          const job = yield* backfill.run({}, (j) => Effect.sync(() => progress.push(j)))
          expect(job.state).toBe("succeeded")
          expect(job.total).toBe(4998)
          expect(job.processed).toBe(4998)
          expect(job.succeeded).toBe(4998)
          expect(job.failed).toBe(0)
          expect(progress.length).toBeGreaterThan(1)
          // Progress only moves forward.
          expect(progress.every((p, i) => i === 0 || p.processed >= progress[i - 1].processed)).toBe(true)
          const after = yield* backfill.dryRun({})
          expect(after).toMatchObject({
            dryRun: true,
            entityTypes: { atoms: { missing: 0, stale: 0, failed: 0 }, messages: { missing: 0, stale: 0, failed: 2 } },
            total: 0,
            tokens: 0
          })
          const [models] = yield* sql<
            { n: number }
          >`SELECT count(DISTINCT model)::int AS n FROM autoembed.rows WHERE source = 'atoms'`
          expect(models.n).toBe(1)
          // The job is visible by id, and through the database for other processes.
          expect((yield* backfill.get(job.id)).state).toBe("succeeded")
          const [row] = yield* sql<
            { state: string; processed: number }
          >`SELECT state, processed::int AS processed FROM autoembed.backfill_jobs WHERE id = ${job.id}`
          expect(row).toEqual({ state: "succeeded", processed: 4998 })
          // The run's worker pool ended with it: a new row stays pending until someone runs workers.
          yield* sql`INSERT INTO messages (content) VALUES ('written after the backfill')`
          yield* Effect.sleep("1500 millis")
          const [late] = yield* sql<
            { e: boolean }
          >`SELECT embedding IS NOT NULL AS e FROM messages WHERE content = 'written after the backfill'`
          expect(late.e).toBe(false)
          // include_failed brings the two failed rows back.
          const retry = yield* backfill.run({ includeFailed: true })
          expect(retry.succeeded).toBe(3)
          const status = yield* (yield* Status).report()
          expect(status.sources.messages).toMatchObject({
            total: 3001,
            embedded: 3001,
            pending: 0,
            failed: 0,
            stale: 0
          })
          expect(status.sources.atoms.index.state).toBe("valid")
        }),
      240_000
    )

    it.effect("limit caps a run; unknown types and bad numbers are refused", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const backfill = yield* Backfill
        yield* sql.withTransaction(Effect.gen(function*() {
          yield* sql`SET LOCAL session_replication_role = replica`
          yield* sql`INSERT INTO messages (content) SELECT 'limited ' || g FROM generate_series(1, 300) g`
        }))
        const job = yield* backfill.run({ limit: 100, entityTypes: ["messages"] })
        expect(job.succeeded).toBe(100)
        expect((yield* backfill.dryRun({ entityTypes: ["messages"] })).total).toBe(200)
        const unknown = yield* Effect.flip(backfill.run({ entityTypes: ["nope"] }))
        expect(unknown.message).toContain("nope")
        const bad = yield* Effect.flip(backfill.start({ batchSize: 0 }))
        expect(bad._tag).toBe("BackfillInvalid")
        const missing = yield* Effect.flip(backfill.get("bf_missing"))
        expect(missing._tag).toBe("BackfillNotFound")
      }), 120_000)
  })
})
