import * as SqlClient from "@effect/sql/SqlClient"
import { afterAll, describe, expect, layer } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { makeEmbeddingPipeline } from "../packages/core/src/pipeline/EmbeddingPipeline.js"
import { ProviderCircuit } from "../packages/core/src/pipeline/ProviderCircuit.js"
import { makeOpenAIProvider } from "../packages/core/src/providers/OpenAIProvider.js"
import { startFakeProviderServer } from "./fakes/FakeProviderServer.js"
import { pipelineLayer, waitUntilIdle } from "./support/Pipeline.js"
import { tier } from "./support/TestDatabase.js"

/**
 * The provider circuit breaker shared by every worker (issue 21): two pipelines (as two worker
 * processes would) embed through the official OpenAI client against the fake, whose key is then
 * revoked (401 to everything).
 */
const fake = await startFakeProviderServer()
afterAll(() => fake.close())

const BREAKER_MS = 1_000
const provider = makeOpenAIProvider({
  apiKey: "the-key-we-were-given",
  baseURL: fake.openaiBaseUrl,
  model: "text-embedding-3-small",
  dimensions: 32,
  timeoutMs: 5_000
})

describe(`the provider circuit breaker (${tier()})`, () => {
  layer(
    pipelineLayer({
      provider,
      overrides: { dimensions: 32, breakerMs: BREAKER_MS, concurrency: 2, sweepIntervalMs: 300, retryBaseMs: 20 }
    }),
    { timeout: 120_000, excludeTestServices: true }
  )((it) => {
    it.scoped("a 401 opens the circuit for every worker: one probe a period, no attempt spent; then all embed", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        // A second pipeline beside the layer's workers: another worker process, as far as the circuit goes.
        yield* makeEmbeddingPipeline()
        fake.reset({ apiKey: "a-rotated-key" })
        yield* sql`
          INSERT INTO messages (content) SELECT 'message ' || g || ' about the deploy' FROM generate_series(1, 60) g`
        yield* Effect.sleep(Duration.millis(4_500))
        const requests = fake.embedRequests("openai")
        const first = requests[0].at
        // After the first failures (at most one per worker and permit), only probes: one text, one per period.
        const later = requests.filter((r) => r.at > first + 500)
        expect(later.every((r) => r.inputs.length === 1 && r.inputs[0] === "autoembed probe")).toBe(true)
        expect(requests.length - later.length).toBeLessThanOrEqual(4)
        expect(later.length).toBeGreaterThanOrEqual(2)
        expect(later.length).toBeLessThanOrEqual(Math.ceil(4_000 / BREAKER_MS) + 1)
        expect(requests.every((r) => r.status === 401)).toBe(true)
        // No row spent an attempt, none failed.
        const [q] = yield* sql<{ attempts: number; failed: number; n: number }>`
          SELECT coalesce(max(attempts), 0)::int AS attempts, count(failed_at)::int AS failed, count(*)::int AS n
          FROM autoembed.queue`
        expect(q).toEqual({ attempts: 0, failed: 0, n: 60 })
        const open = yield* (yield* ProviderCircuit).open
        expect(open).toHaveLength(1)
        expect(open[0]).toMatchObject({ model: "openai/text-embedding-3-small" })
        expect(open[0].lastError).toMatch(/^Auth: /)

        // The key works again: the next probe closes the circuit and every row is embedded.
        fake.reset({})
        expect(yield* waitUntilIdle(Duration.seconds(30))).toBe(0)
        expect(yield* (yield* ProviderCircuit).open).toEqual([])
        const [embedded] = yield* sql<
          { n: number }
        >`SELECT count(*)::int AS n FROM messages WHERE embedding IS NOT NULL`
        expect(embedded.n).toBe(60)
      }))
  })
})
