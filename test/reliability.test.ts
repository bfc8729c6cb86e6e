import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, layer } from "@effect/vitest"
import { Duration, Effect, Layer } from "effect"
import { Backfill } from "../packages/core/src/pipeline/Backfill.js"
import { embedLocal } from "../packages/core/src/providers/LocalProvider.js"
import { makeOpenAIProvider } from "../packages/core/src/providers/OpenAIProvider.js"
import { startFakeProviderServer } from "./fakes/FakeProviderServer.js"
import { pipelineLayer, waitUntilIdle } from "./support/Pipeline.js"
import { tier } from "./support/TestDatabase.js"

const DIMS = 64
const MODEL = "text-embedding-3-small"
const fake = await startFakeProviderServer()

/** The official openai client against the fake server: real HTTP, real error mapping. */
const provider = makeOpenAIProvider({
  apiKey: "sk-test",
  baseURL: fake.openaiBaseUrl,
  model: MODEL,
  dimensions: DIMS,
  timeoutMs: 5000
})

const Live = Layer.provideMerge(
  Backfill.Default,
  pipelineLayer({
    provider,
    overrides: {
      dimensions: DIMS,
      batchSize: 50,
      concurrency: 2,
      retryBaseMs: 20,
      retryMaxMs: 200,
      retries: 8,
      maxAttempts: 3,
      sweepIntervalMs: 300
    }
  })
)

const successfulInputs = () => fake.embedRequests("openai").filter((r) => r.status === 200).flatMap((r) => r.inputs)

const parse = (s: string) => JSON.parse(s) as Array<number>

describe(`reliability against the fake provider (${tier()})`, () => {
  layer(Live, { timeout: 180_000, excludeTestServices: true })((it) => {
    it.effect("30% of calls failing with 500/429: every row embedded once, calls bounded", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        fake.reset({ failureRate: 0.3, failureStatus: 500, seed: 7, retryAfterSeconds: 0 })
        fake.requests.length = 0
        // First half fails with 500s, second half with 429 + Retry-After.
        yield* sql`INSERT INTO messages (content)
          SELECT 'flaky provider message number ' || g FROM generate_series(1, 150) g`
        expect(yield* waitUntilIdle(Duration.seconds(120))).toBe(0)
        fake.behaviour.failureStatus = 429
        yield* sql`INSERT INTO messages (content)
          SELECT 'flaky provider message number ' || g FROM generate_series(151, 300) g`
        expect(yield* waitUntilIdle(Duration.seconds(120))).toBe(0)
        const [missing] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM messages WHERE embedding IS NULL`
        expect(missing.n).toBe(0)
        const ok = successfulInputs()
        // No row embedded twice: every text went through one successful call exactly once.
        expect(ok.length).toBe(300)
        expect(new Set(ok).size).toBe(300)
        const calls = fake.embedRequests("openai")
        expect(calls.some((c) => c.status === 500)).toBe(true)
        expect(calls.some((c) => c.status === 429)).toBe(true)
        // Bounded: 6 batches of 50 need 6 calls; with 30% failures a few more, never a storm.
        expect(calls.length).toBeLessThan(40)
        const [failed] = yield* sql<
          { n: number }
        >`SELECT count(*)::int AS n FROM autoembed.queue WHERE failed_at IS NOT NULL`
        expect(failed.n).toBe(0)
      }))

    it.effect("one poison text in a batch of 50: 49 embedded, 1 failed with its error, retry-failed requeues it", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        fake.reset({ poisonMarker: "POISON" })
        yield* sql`DELETE FROM messages`
        yield* sql`INSERT INTO messages (content)
          SELECT CASE WHEN g = 17 THEN 'a POISON message' ELSE 'healthy message ' || g END
          FROM generate_series(1, 50) g`
        yield* Effect.sleep("300 millis")
        expect(yield* waitUntilIdle(Duration.seconds(60))).toBe(0)
        const [embedded] = yield* sql<
          { n: number }
        >`SELECT count(*)::int AS n FROM messages WHERE embedding IS NOT NULL`
        expect(embedded.n).toBe(49)
        const failed = yield* sql<{ row_id: string; last_error: string; attempts: number }>`
          SELECT q.row_id, q.last_error, q.attempts FROM autoembed.queue q WHERE q.failed_at IS NOT NULL`
        expect(failed).toHaveLength(1)
        expect(failed[0].last_error).toMatch(/InvalidInput/)
        expect(failed[0].attempts).toBe(1)
        const [poison] = yield* sql<{ id: number }>`SELECT id FROM messages WHERE content LIKE '%POISON%'`
        expect(failed[0].row_id).toBe(String(poison.id))
        // The provider is fixed; retry-failed requeues the row and the running workers embed it.
        fake.reset({})
        const backfill = yield* Backfill
        expect(yield* backfill.retryFailed(["messages"])).toEqual({ requeued: 1 })
        expect(yield* waitUntilIdle(Duration.seconds(30))).toBe(0)
        const [after] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM messages WHERE embedding IS NOT NULL`
        expect(after.n).toBe(50)
      }))

    it.effect("content updated while its embedding is in flight: the final vector matches the new content", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        fake.reset({ latencyMs: 800 })
        const [row] = yield* sql<
          { id: number }
        >`INSERT INTO atoms (type, title, content) VALUES ('note', 'In flight', 'the old content') RETURNING id`
        // Wait until the request is at the provider, then change the row.
        const deadline = Date.now() + 10_000
        while (
          !fake.requests.some((r) => r.inputs.some((i) => i.includes("the old content"))) && Date.now() < deadline
        ) {
          yield* Effect.sleep("20 millis")
        }
        yield* sql`UPDATE atoms SET content = 'the new content' WHERE id = ${row.id}`
        fake.reset({ latencyMs: 0 })
        expect(yield* waitUntilIdle(Duration.seconds(30))).toBe(0)
        // Let the stale request finish too: its late answer must not overwrite the new vector.
        while (fake.requests.some((r) => r.status === undefined)) yield* Effect.sleep("20 millis")
        yield* Effect.sleep("200 millis")
        const [after] = yield* sql<{ embedding: string; embedding_hash: string; h: string }>`
          SELECT embedding::text AS embedding, r.hash AS embedding_hash,
            md5('In flight' || E'\\n\\n' || 'the new content') AS h
          FROM atoms JOIN autoembed.rows r ON r.source = 'atoms' AND r.row_id = atoms.id::text WHERE id = ${row.id}`
        expect(after.embedding_hash).toBe(after.h)
        const expected = embedLocal("In flight\n\nthe new content", DIMS)
        expect(parse(after.embedding).every((x, i) => Math.abs(x - expected[i]) < 1e-5)).toBe(true)
      }))

    it.effect("a row deleted while pending is dropped, not retried", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        fake.reset({ latencyMs: 500 })
        const [row] = yield* sql<{ id: number }>`INSERT INTO messages (content) VALUES ('short-lived') RETURNING id`
        yield* sql`DELETE FROM messages WHERE id = ${row.id}`
        fake.reset({})
        expect(yield* waitUntilIdle(Duration.seconds(30))).toBe(0)
        const q = yield* sql`SELECT 1 FROM autoembed.queue WHERE row_id = ${String(row.id)} AND source = 'messages'`
        expect(q).toHaveLength(0)
      }))
  })
})
