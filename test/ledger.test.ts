import * as SqlClient from "@effect/sql/SqlClient"
import { afterAll, describe, expect, it as vitestIt, layer } from "@effect/vitest"
import { Effect, Layer, Option, Schema, TestClock, TestContext } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as Path from "node:path"
import { StatusResponse } from "../packages/api/src/contract/Schemas.js"
import { HttpMetrics } from "../packages/api/src/Metrics.js"
import { costOf, DEFAULT_PRICES, priceOf } from "../packages/core/src/config/Prices.js"
import { loadConfigFile } from "../packages/core/src/config/SourceConfig.js"
import { Backfill } from "../packages/core/src/pipeline/Backfill.js"
import { Status } from "../packages/core/src/pipeline/Status.js"
import { WorkerStatus } from "../packages/core/src/pipeline/WorkerStatus.js"
import { makeOpenAIProvider } from "../packages/core/src/providers/OpenAIProvider.js"
import { QueryCache } from "../packages/core/src/search/QueryCache.js"
import { Search, SearchRequest } from "../packages/core/src/search/Search.js"
import { EmbeddingSets } from "../packages/core/src/sets/EmbeddingSets.js"
import { EmbeddingStore, type LedgerSummary } from "../packages/core/src/storage/EmbeddingStore.js"
import { startFakeProviderServer } from "./fakes/FakeProviderServer.js"
import { eventually, json, startTestServer } from "./support/ApiServer.js"
import { storeLayer } from "./support/Pipeline.js"
import { tier } from "./support/TestDatabase.js"

/**
 * The token and cost ledger: every provider call books its input tokens (what the provider reported,
 * through the official clients against the fake servers, which report `usage.prompt_tokens` and
 * `prompt_eval_count`), per source, set, model, kind and hour; status, the wire contract and
 * /metrics show them; a backfill dry run estimates them within 10 % of what the run then spends.
 */
const DIMS = 32
const ROWS = 600
const OPENAI_MODEL = "text-embedding-3-small"
/** An override of the default price (0.02), as the configuration file's `prices` gives it. */
const OPENAI_PRICE = 0.5

const openaiFake = await startFakeProviderServer()
const ollamaFake = await startFakeProviderServer({ modelDimensions: { "nomic-embed-text": 24 } })
afterAll(async () => {
  await openaiFake.close()
  await ollamaFake.close()
})

const provider = makeOpenAIProvider({
  apiKey: "sk-test",
  baseURL: openaiFake.openaiBaseUrl,
  model: OPENAI_MODEL,
  dimensions: DIMS,
  timeoutMs: 10_000
})

const Live = Layer.mergeAll(Backfill.Default, Status.Default).pipe(
  Layer.provideMerge(EmbeddingSets.Default),
  Layer.provideMerge(Search.DefaultWithoutDependencies),
  Layer.provideMerge(QueryCache.Default),
  Layer.provideMerge(WorkerStatus.none),
  Layer.provideMerge(
    storeLayer(
      { dimensions: DIMS, batchSize: 50, concurrency: 2, prices: { [`openai/${OPENAI_MODEL}`]: OPENAI_PRICE } },
      {},
      provider
    )
  )
)

/** Texts of varied length and script, so the estimate is tested on more than one shape of row. */
const insertMessages = (n: number, offset = 0) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`
      INSERT INTO messages (content)
      SELECT 'Message ' || (g + ${offset}) || ': ' || repeat(
        (ARRAY['the deploy failed on a locked table ', 'café résumé naïve ', '数据库迁移 ', 'ok '])[1 + g % 4],
        1 + g % 17)
      FROM generate_series(1, ${n}) g`
  })

const ledger = Effect.flatMap(EmbeddingStore, (store) => store.ledgerSummary({}))

const linesOf = (summary: LedgerSummary, where: { set?: string; kind?: string; model?: string }) =>
  summary.lines.filter((l) =>
    (where.set === undefined || l.set === where.set) && (where.kind === undefined || l.kind === where.kind) &&
    (where.model === undefined || l.model === where.model)
  )

const withinTenPercent = (estimate: number, actual: number) => {
  expect(actual).toBeGreaterThan(0)
  expect(Math.abs(estimate - actual) / actual).toBeLessThan(0.1)
}

describe(`token ledger (${tier()})`, () => {
  layer(Live, { timeout: 300_000, excludeTestServices: true })((it) => {
    it.effect("a dry run estimates a backfill's tokens within 10 %; the ledger books what the fake reported", () =>
      Effect.gen(function*() {
        const backfill = yield* Backfill
        yield* insertMessages(ROWS)
        const dry = yield* backfill.dryRun({ entityTypes: ["messages"] })
        expect(dry.total).toBe(ROWS)
        expect(dry.entityTypes.messages).toMatchObject({
          missing: ROWS,
          model: `openai/${OPENAI_MODEL}`,
          calibration: 1
        })
        expect(dry.costUsd).toBeCloseTo(costOf(dry.tokens, OPENAI_PRICE), 12)

        openaiFake.reset()
        const job = yield* backfill.run({ entityTypes: ["messages"] })
        expect(job.succeeded).toBe(ROWS)
        const reported = openaiFake.reportedTokens
        const summary = yield* ledger
        const [line] = linesOf(summary, { set: "messages", kind: "document" })
        // Exactly what the fake reported, request for request, and none of it an estimate.
        expect(line.total.tokens).toBe(reported)
        expect(line.estimatedTokens).toBe(0)
        expect(line.requests).toBe(openaiFake.embedRequests("openai").length)
        expect(line.inputs).toBe(ROWS)
        // The default price here (the summary was read without the configuration's override).
        expect(line).toMatchObject({ source: "messages", model: `openai/${OPENAI_MODEL}`, usdPerMillionTokens: 0.02 })
        withinTenPercent(dry.tokens, reported)
      }))

    it.effect("status shows tokens and cost per hour, day and total, at the configured price", () =>
      Effect.gen(function*() {
        const report = yield* (yield* Status).report()
        const [line] = linesOf(report.usage, { set: "messages", kind: "document" })
        expect(line.usdPerMillionTokens).toBe(OPENAI_PRICE)
        expect(line.total.costUsd).toBeCloseTo((line.total.tokens * OPENAI_PRICE) / 1e6, 12)
        // Everything happened within this hour.
        expect(line.hour).toEqual(line.total)
        expect(line.day).toEqual(line.total)
        expect(report.usage.total.tokens).toBe(line.total.tokens)
        expect(report.usage.hour.costUsd).toBeCloseTo(line.total.costUsd, 12)
        // On the wire: snake_case, through the contract's schema (what /v1/embeddings/status sends).
        const wire = yield* Schema.encode(StatusResponse)(report)
        expect(wire.usage.total).toEqual({ tokens: line.total.tokens, cost_usd: line.total.costUsd })
        expect(wire.usage.lines[0]).toMatchObject({ set: "messages", usd_per_million_tokens: OPENAI_PRICE })
      }))

    it.effect("/metrics exposes the ledger's totals and windows per source, set, model and kind", () =>
      Effect.gen(function*() {
        // Priced as status prices it: with the configuration's override.
        const [line] = linesOf((yield* (yield* Status).report()).usage, { set: "messages", kind: "document" })
        const text = yield* new HttpMetrics().render()
        const labels = `kind="document",model="openai/${OPENAI_MODEL}",set="messages",source="messages"`
        const value = (name: string, extra = "") => {
          const found = text.split("\n").find((l) =>
            l.startsWith(`${name}{`) && l.includes(labels.split(",")[1]) && l.includes("kind=\"document\"") &&
            l.includes(extra)
          )
          return found === undefined ? undefined : Number(found.split(" ").at(-1))
        }
        expect(value("autoembed_provider_tokens_total")).toBe(line.total.tokens)
        expect(value("autoembed_provider_cost_usd_total")).toBeCloseTo(line.total.costUsd, 9)
        expect(value("autoembed_provider_tokens", "window=\"hour\"")).toBe(line.hour.tokens)
        expect(value("autoembed_provider_tokens", "window=\"day\"")).toBe(line.day.tokens)
        expect(value("autoembed_provider_cost_usd", "window=\"day\"")).toBeCloseTo(line.day.costUsd, 9)
      }))

    it.effect("a search query's embedding is booked as kind query of the searched source's set", () =>
      Effect.gen(function*() {
        openaiFake.reset()
        const request = yield* Schema.decodeUnknown(SearchRequest)({
          q: "which deploy failed on a locked table?",
          types: ["messages"],
          mode: "vector",
          limit: 3
        })
        yield* (yield* Search).search(request)
        // The same query again is answered from the query cache: no call, no tokens.
        yield* (yield* Search).search(request)
        const [query] = linesOf(yield* ledger, { set: "messages", kind: "query" })
        expect(openaiFake.embedRequests("openai")).toHaveLength(1)
        expect(query).toMatchObject({ source: "messages", requests: 1, inputs: 1, estimatedTokens: 0 })
        expect(query.total.tokens).toBe(openaiFake.reportedTokens)
      }))

    it.effect("an Ollama set's tokens (prompt_eval_count) are booked under its own key, at no cost", () =>
      Effect.gen(function*() {
        const sets = yield* EmbeddingSets
        const backfill = yield* Backfill
        const added = yield* sets.add({
          source: "messages",
          provider: "ollama",
          model: "nomic-embed-text",
          dimensions: 24,
          baseUrl: ollamaFake.ollamaHost
        })
        // nomic-embed-text puts "search_document: " before every text: the estimate counts it too.
        const dry = yield* backfill.dryRun({ entityTypes: ["messages"], set: added.report.name })
        const [key] = Object.keys(dry.entityTypes)
        expect(key).toMatch(/^messages@\d+$/)
        expect(dry.entityTypes[key]).toMatchObject({ model: "ollama/nomic-embed-text", costUsd: 0 })
        ollamaFake.reset({ modelDimensions: { "nomic-embed-text": 24 } })
        const job = yield* backfill.run({ entityTypes: ["messages"], set: added.report.name })
        expect(job.succeeded).toBe(ROWS)
        const [line] = linesOf(yield* ledger, { set: key, kind: "document" })
        expect(line).toMatchObject({ source: "messages", model: "ollama/nomic-embed-text", estimatedTokens: 0 })
        expect(line.total.tokens).toBe(ollamaFake.reportedTokens)
        expect(line.total.costUsd).toBe(0)
        withinTenPercent(dry.tokens, line.total.tokens)
      }))

    it.effect("a ledger that cannot be written loses no embedding", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const backfill = yield* Backfill
        const before = (yield* ledger).total.tokens
        // As a dropped or locked-down table would: every booking fails.
        yield* sql`ALTER TABLE autoembed.token_ledger RENAME TO token_ledger_away`
        const job = yield* Effect.ensuring(
          Effect.zipRight(insertMessages(40, ROWS), backfill.run({ entityTypes: ["messages"] })),
          sql`ALTER TABLE autoembed.token_ledger_away RENAME TO token_ledger`.pipe(Effect.orDie)
        )
        expect(job.state).toBe("succeeded")
        expect(job.failed).toBe(0)
        const [r] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM messages WHERE embedding IS NULL`
        expect(r.n).toBe(0)
        expect((yield* ledger).total.tokens).toBe(before)
      }))

    it.effect("a provider that counts fewer tokens than autoembed calibrates the next dry run", () =>
      Effect.gen(function*() {
        const sets = yield* EmbeddingSets
        const backfill = yield* Backfill
        const added = yield* sets.add({
          source: "messages",
          provider: "openai",
          model: "text-embedding-3-large",
          dimensions: DIMS,
          baseUrl: openaiFake.openaiBaseUrl
        })
        // A tokenizer that needs 20 % fewer tokens than autoembed's bytes / 3 (as BPE does on English);
        // counted from here, after the set's probe (probes are not booked).
        openaiFake.reset({ usageScale: 0.8 })
        const set = added.report.name
        const first = yield* backfill.dryRun({ set })
        const [key] = Object.keys(first.entityTypes)
        expect(first.entityTypes[key].calibration).toBe(1)
        yield* backfill.run({ set, limit: 320 })
        const booked = linesOf(yield* ledger, { set: key })[0].total.tokens
        expect(booked).toBe(openaiFake.reportedTokens)
        // Uncalibrated, the first estimate was about 25 % over what the provider billed.
        expect(first.tokens * 320 / first.total / booked).toBeGreaterThan(1.2)

        const second = yield* backfill.dryRun({ set })
        expect(second.entityTypes[key].calibration).toBeCloseTo(0.8, 2)
        openaiFake.reset({ usageScale: 0.8 })
        yield* backfill.run({ set })
        withinTenPercent(second.tokens, openaiFake.reportedTokens)
        expect(second.costUsd).toBeCloseTo(costOf(second.tokens, 0.13), 12)
      }))

    it.effect("windows are whole clock hours: this hour, the last 24, and everything", () =>
      Effect.gen(function*() {
        const store = yield* EmbeddingStore
        const usage = { tokens: 100, reported: true, estimatedTokens: 0, countedTokens: 100, requests: 1 }
        const book = (tokens: number) =>
          store.recordUsage({
            source: "clock",
            setKey: "clock",
            model: "openai/text-embedding-3-large",
            kind: "document",
            inputs: 1,
            usage: { ...usage, tokens }
          })
        const HOUR = 3_600_000
        const linesAt = Effect.map(store.ledgerSummary({}), (s) => linesOf(s, { set: "clock" })[0])
        // Under the TestClock (time 0 = 1970-01-01T00:00Z): 30 h back, 5 h back, and now.
        const at = Effect.gen(function*() {
          yield* book(1_000)
          yield* TestClock.adjust(25 * HOUR)
          yield* book(200)
          yield* TestClock.adjust(5 * HOUR + 10 * 60_000)
          yield* book(30)
          yield* book(4)
          return yield* linesAt
        }).pipe(Effect.provide(TestContext.TestContext))
        const line = yield* at
        expect(line.hour.tokens).toBe(34)
        expect(line.day.tokens).toBe(234)
        expect(line.total.tokens).toBe(1_234)
        expect(line.requests).toBe(4)
        // The default price of text-embedding-3-large.
        expect(line.usdPerMillionTokens).toBe(0.13)
        expect(line.total.costUsd).toBeCloseTo(1_234 * 0.13 / 1e6, 12)
      }))
  })
})

describe("prices", () => {
  vitestIt("default to OpenAI's list prices, 0 for local models, unknown otherwise; overrides win", () => {
    expect(priceOf({}, "openai/text-embedding-3-small")).toBe(0.02)
    expect(priceOf({}, "openai/text-embedding-3-large")).toBe(0.13)
    expect(priceOf({}, "openai/text-embedding-ada-002")).toBe(0.1)
    expect(priceOf({}, "ollama/mxbai-embed-large")).toBe(0)
    expect(priceOf({}, "local/local-hash-v1")).toBe(0)
    expect(priceOf({}, "openai/bge-m3")).toBeUndefined()
    expect(priceOf({ "text-embedding-3-small": 0.01 }, "openai/text-embedding-3-small")).toBe(0.01)
    expect(priceOf({ "openai/bge-m3": 0.05, "bge-m3": 9 }, "openai/bge-m3")).toBe(0.05)
    expect(Object.keys(DEFAULT_PRICES)).toHaveLength(3)
  })

  vitestIt("come from the configuration file's prices, a wrong one named by its key", async () => {
    const dir = mkdtempSync(Path.join(tmpdir(), "autoembed-prices-"))
    const good = Path.join(dir, "good.json")
    writeFileSync(good, JSON.stringify({ prices: { "openai/text-embedding-3-small": 0.015, "my-model": 0 } }))
    const loaded = await Effect.runPromise(loadConfigFile(good))
    expect(loaded?.file.prices).toEqual({ "openai/text-embedding-3-small": 0.015, "my-model": 0 })
    const bad = Path.join(dir, "bad.yaml")
    writeFileSync(bad, "prices:\n  openai/text-embedding-3-large: -1\n  other: cheap\n")
    const error = await Effect.runPromise(Effect.flip(loadConfigFile(bad)))
    expect(error.message).toContain("prices.openai/text-embedding-3-large: must be a price in USD per 1M input tokens")
    expect(error.message).toContain("prices.other: must be a price in USD per 1M input tokens")
  })
})

describe(`token ledger over HTTP (${tier()})`, () => {
  vitestIt("status, the dry run and /metrics of a running server show the workers' tokens and cost", async () => {
    openaiFake.reset()
    const server = await startTestServer({
      workers: true,
      config: {
        provider: "openai",
        model: Option.some(OPENAI_MODEL),
        openaiBaseUrl: Option.some(openaiFake.openaiBaseUrl),
        dimensions: DIMS
      }
    })
    try {
      // The start-up probe is not a row's embedding: count from here.
      openaiFake.reset()
      const messages = Array.from({ length: 30 }, (_, i) => ({ content: `note ${i} about the billing deploy` }))
      const posted = await fetch(`${server.url}/v1/messages`, json({ messages }))
      expect(posted.status).toBe(201)
      const status = await eventually(async () => {
        const body = await (await fetch(`${server.url}/v1/embeddings/status`)).json() as any
        return body.sources.messages.pending === 0 && body.usage.total.tokens === openaiFake.reportedTokens &&
            body.usage.total.tokens > 0
          ? body
          : undefined
      }, 30_000)
      expect(status.usage.hour.tokens).toBe(status.usage.total.tokens)
      expect(status.usage.total.cost_usd).toBeCloseTo(status.usage.total.tokens * 0.02 / 1e6, 12)
      expect(status.usage.lines[0]).toMatchObject({
        source: "messages",
        kind: "document",
        usd_per_million_tokens: 0.02
      })

      const dry = await (await fetch(`${server.url}/v1/embeddings/backfill`, json({ dry_run: true }))).json() as any
      expect(dry).toMatchObject({ dry_run: true, total: 0, tokens: 0, cost_usd: 0 })
      expect(dry.entity_types.messages).toMatchObject({ model: `openai/${OPENAI_MODEL}`, tokens: 0 })

      const metrics = await (await fetch(`${server.url}/metrics`)).text()
      expect(metrics).toMatch(
        new RegExp(`autoembed_provider_tokens_total\\{[^}]*set="messages"[^}]*\\} ${status.usage.total.tokens}\\n`)
      )
      expect(metrics).toContain("autoembed_provider_cost_usd_total{")
    } finally {
      await server.stop()
    }
  }, 120_000)
})
