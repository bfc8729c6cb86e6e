import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll, beforeEach } from "vitest"
import { AutoEmbedConfig } from "../packages/core/src/config/AutoEmbedConfig.js"
import {
  EmbeddingProvider,
  estimateTokens,
  type ProviderError,
  splitByLimits,
  truncateToTokens
} from "../packages/core/src/providers/EmbeddingProvider.js"
import {
  DimensionMismatch,
  embedLocal,
  makeOllamaProvider,
  makeOpenAIProvider,
  OpenAIProviderLive,
  parseDuration,
  parseRetryAfter,
  profileFor,
  validateVectors
} from "../packages/core/src/providers/index.js"
import { FakeProviderServer } from "./fakes/FakeProviderServer.js"

const fake = new FakeProviderServer()
beforeAll(() => fake.start())
afterAll(() => fake.close())
beforeEach(() => fake.reset())

const ollama = (o: Partial<Parameters<typeof makeOllamaProvider>[0]> = {}) =>
  makeOllamaProvider({ host: fake.ollamaHost, model: "mxbai-embed-large", dimensions: 1024, timeoutMs: 5_000, ...o })

const openai = (o: Partial<Parameters<typeof makeOpenAIProvider>[0]> = {}) =>
  makeOpenAIProvider({
    apiKey: "sk-test",
    baseURL: fake.openaiBaseUrl,
    model: "text-embedding-3-small",
    dimensions: 1536,
    timeoutMs: 5_000,
    ...o
  })

/** A port nobody listens on (bound, then released). */
const closedPort = () =>
  new Promise<number>((resolve) => {
    const server = createServer()
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      server.close(() => resolve(port))
    })
  })

const MXBAI_QUERY = "Represent this sentence for searching relevant passages: "
const texts = ["the cat sat on the mat", "dogs chase cats", "graphene conducts electricity", "", "β-amyloid 斑块"]

describe("helpers", () => {
  it("estimates tokens as ceil(UTF-8 bytes / 3)", () => {
    expect(estimateTokens("")).toBe(0)
    expect(estimateTokens("abc")).toBe(1)
    expect(estimateTokens("abcd")).toBe(2)
    expect(estimateTokens("漢字")).toBe(2) // 3 bytes each
    expect(estimateTokens("😀")).toBe(2) // 4 bytes
  })

  it("truncates at a whitespace boundary, never splitting a character", () => {
    const long = "alpha beta gamma delta ".repeat(100)
    const cut = truncateToTokens(long, 10) // 30 bytes
    expect(cut).toBe("alpha beta gamma delta alpha")
    expect(estimateTokens(cut)).toBeLessThanOrEqual(10)
    expect(truncateToTokens("short", 10)).toBe("short")
    const cjk = "漢".repeat(100)
    expect(truncateToTokens(cjk, 10)).toBe("漢".repeat(10))
    const emoji = "😀".repeat(10) // 40 bytes: 7 fit in 30 bytes
    expect(truncateToTokens(emoji, 10)).toBe("😀".repeat(7))
    // No whitespace near the cut: cut mid-word rather than lose the text.
    expect(truncateToTokens("x".repeat(100), 5)).toBe("x".repeat(15))
  })

  it("splits by input count and token budget, in order", () => {
    const limits = { maxInputsPerRequest: 3, maxTokensPerInput: 10, maxTokensPerRequest: 20 }
    const input = ["a".repeat(30), "b".repeat(30), "c".repeat(300), "d", "e", "f", "g"]
    expect(splitByLimits(input, limits)).toEqual([[input[0], input[1]], [input[2], input[3], input[4]], [
      input[5],
      input[6]
    ]])
  })

  it("parses Retry-After, retry-after-ms and x-ratelimit-reset-*", () => {
    const now = Date.parse("2025-01-01T00:00:00Z")
    expect(parseRetryAfter(new Headers({ "retry-after": "7" }), now)).toBe(7000)
    expect(parseRetryAfter(new Headers({ "retry-after": "Wed, 01 Jan 2025 00:00:30 GMT" }), now)).toBe(30_000)
    expect(parseRetryAfter(new Headers({ "retry-after-ms": "250", "retry-after": "7" }), now)).toBe(250)
    expect(
      parseRetryAfter(new Headers({ "x-ratelimit-reset-requests": "20ms", "x-ratelimit-reset-tokens": "6m0s" }), now)
    )
      .toBe(360_000)
    expect(parseRetryAfter(new Headers({}), now)).toBeUndefined()
    expect(parseDuration("1h2m3.5s")).toBe(3_723_500)
    expect(parseDuration("1s")).toBe(1000)
    expect(parseDuration("bogus")).toBeUndefined()
  })

  it("has profiles, matching Ollama tags on the name before ':'", () => {
    expect(profileFor("ollama", "mxbai-embed-large:latest")).toMatchObject({
      nativeDimensions: 1024,
      contextTokens: 512,
      queryPrefix: MXBAI_QUERY,
      documentPrefix: ""
    })
    expect(profileFor("ollama", "nomic-embed-text:v1.5")).toMatchObject({
      nativeDimensions: 768,
      contextTokens: 8192,
      documentPrefix: "search_document: ",
      queryPrefix: "search_query: "
    })
    expect(profileFor("openai", "text-embedding-3-large")).toMatchObject({
      nativeDimensions: 3072,
      supportsDimensionsParam: true
    })
    expect(profileFor("openai", "text-embedding-ada-002")).toMatchObject({
      nativeDimensions: 1536,
      supportsDimensionsParam: false
    })
    expect(profileFor("ollama", "my-model")).toMatchObject({
      known: false,
      contextTokens: 512,
      documentPrefix: "",
      nativeDimensions: undefined
    })
    expect(profileFor("openai", "my-model")).toMatchObject({ known: false, contextTokens: 8191 })
  })
})

const reasonOf = <A>(effect: Effect.Effect<A, ProviderError>) => Effect.flip(effect)

describe("Ollama provider (official client against the fake)", () => {
  it.live("embeds a batch in one request, in order", () =>
    Effect.gen(function*() {
      const vectors = yield* ollama().embed(texts, "document")
      expect(vectors).toEqual(texts.map((t) => embedLocal(t, 1024)))
      const reqs = fake.embedRequests("ollama")
      expect(reqs).toHaveLength(1)
      expect(reqs[0].inputs).toEqual(texts)
      expect(reqs[0].model).toBe("mxbai-embed-large")
    }))

  it.live("splits more than 512 inputs into requests and keeps order", () =>
    Effect.gen(function*() {
      const many = Array.from({ length: 1100 }, (_, i) => `text number ${i}`)
      const vectors = yield* ollama({ model: "all-minilm", dimensions: 384 }).embed(many, "document")
      expect(fake.embedRequests().map((r) => r.inputCount)).toEqual([512, 512, 76])
      expect(vectors[1099]).toEqual(embedLocal("text number 1099", 384))
      expect(vectors[600]).toEqual(embedLocal("text number 600", 384))
    }))

  it.live("applies the model's prefix per kind", () =>
    Effect.gen(function*() {
      yield* ollama().embed(["what is graphene"], "query")
      yield* ollama().embed(["graphene is carbon"], "document")
      yield* ollama({ model: "nomic-embed-text:v1.5", dimensions: 768 }).embed(["a"], "document")
      yield* ollama({ model: "nomic-embed-text:v1.5", dimensions: 768 }).embed(["b"], "query")
      expect(fake.embedRequests().map((r) => r.inputs[0])).toEqual([
        MXBAI_QUERY + "what is graphene",
        "graphene is carbon",
        "search_document: a",
        "search_query: b"
      ])
    }))

  it.live("truncates over-long inputs to the context and still sends them", () =>
    Effect.gen(function*() {
      const long = "protein folding ".repeat(1000)
      yield* ollama().embed([long, "short"], "query")
      const [sent, short] = fake.embedRequests()[0].inputs
      expect(estimateTokens(sent)).toBeLessThanOrEqual(512)
      expect(estimateTokens(sent)).toBeGreaterThan(500)
      expect(sent.startsWith(MXBAI_QUERY + "protein folding")).toBe(true)
      expect(sent).toMatch(/(protein|folding)$/)
      expect(short).toBe(MXBAI_QUERY + "short")
    }))

  it.live("maps errors to reasons", () =>
    Effect.gen(function*() {
      fake.reset({ models: ["all-minilm"] })
      const missing = yield* reasonOf(ollama().embed(["x"], "document"))
      expect(missing.reason).toBe("ModelNotFound")
      expect(missing.message).toContain("ollama pull mxbai-embed-large")
      expect(missing.message).toContain("EMBEDDING_MODEL")

      fake.reset({ failNext: 1, failNextStatus: 500 })
      expect((yield* reasonOf(ollama().embed(["x"], "document"))).reason).toBe("Transient")

      fake.reset({ failNext: 1, failNextStatus: 429, retryAfterSeconds: 2 })
      const limited = yield* reasonOf(ollama().embed(["x"], "document"))
      expect(limited).toMatchObject({ reason: "RateLimited", retryAfterMs: 2000, status: 429 })

      fake.reset({ poisonMarker: "POISON" })
      expect((yield* reasonOf(ollama().embed(["ok", "a POISON b"], "document"))).reason).toBe("InvalidInput")

      fake.reset({ apiKey: "secret" })
      expect((yield* reasonOf(ollama().embed(["x"], "document"))).reason).toBe("Auth")
      fake.reset({ failNext: 1, failNextStatus: 403 })
      expect((yield* reasonOf(ollama().embed(["x"], "document"))).reason).toBe("Auth")

      const port = yield* Effect.promise(closedPort)
      const down = yield* reasonOf(ollama({ host: `http://127.0.0.1:${port}` }).embed(["x"], "document"))
      expect(down.reason).toBe("Transient")
      expect(down.message).toBe(`Ollama at http://127.0.0.1:${port} is not reachable from this process (ECONNREFUSED)`)
      // fetch refuses port 9 before connecting; still Transient, still named.
      const nine = yield* reasonOf(ollama({ host: "http://127.0.0.1:9" }).embed(["x"], "document"))
      expect(nine.message).toBe("Ollama at http://127.0.0.1:9 is not reachable from this process (bad port)")
    }))

  it.live("refuses bad responses: wrong dimension, wrong count, malformed JSON, non-finite numbers", () =>
    Effect.gen(function*() {
      const wrongDim = yield* reasonOf(ollama({ model: "nomic-embed-text", dimensions: 1024 }).embed(["x"], "document"))
      expect(wrongDim.reason).toBe("BadResponse")
      expect(wrongDim.cause).toBeInstanceOf(DimensionMismatch)
      expect(wrongDim.message).toContain("768-dimensional")

      fake.reset({ wrongCount: true })
      expect((yield* reasonOf(ollama().embed(["x", "y"], "document"))).reason).toBe("BadResponse")
      fake.reset({ malformedJson: true })
      expect((yield* reasonOf(ollama().embed(["x"], "document"))).reason).toBe("BadResponse")
      fake.reset({ nonFinite: true })
      expect((yield* reasonOf(ollama().embed(["x"], "document"))).reason).toBe("BadResponse")
    }))

  it.effect("refuses numbers beyond float4, which pgvector would reject as infinite, naming where they are", () =>
    Effect.gen(function*() {
      const ok = yield* validateVectors("Ollama", "m", 1, 3, [[3.4e38, -3.4e38, 1e-45]])
      expect(ok).toEqual([[3.4e38, -3.4e38, 1e-45]])
      const e = yield* Effect.flip(validateVectors("Ollama", "m", 1, 3, [[0.5, 1e39, 0]]))
      expect(e.reason).toBe("BadResponse")
      expect(e.message).toBe(
        "Ollama returned 1e+39 in embedding 0 at position 1, beyond the float4 range pgvector stores"
      )
    }))

  it.live("times out a hanging request as Transient", () =>
    Effect.gen(function*() {
      fake.reset({ hang: true })
      const start = Date.now()
      const e = yield* reasonOf(ollama({ timeoutMs: 300 }).embed(["x"], "document"))
      expect(e.reason).toBe("Transient")
      expect(e.message).toContain("300 ms")
      expect(Date.now() - start).toBeLessThan(10_000)
    }))
})

describe("OpenAI provider (official client against the fake)", () => {
  it.live("embeds a batch, sorted by index, asking for floats, without dimensions at native size", () =>
    Effect.gen(function*() {
      fake.reset({ shuffle: true })
      const vectors = yield* openai().embed(texts, "query")
      expect(vectors).toEqual(texts.map((t) => embedLocal(t, 1536)))
      const [req] = fake.embedRequests("openai")
      expect(req).toMatchObject({
        inputs: texts,
        encodingFormat: "float",
        dimensions: undefined,
        authorization: "Bearer sk-test"
      })
    }))

  it.live("sends dimensions only to models that support it, when it differs from native", () =>
    Effect.gen(function*() {
      const v = yield* openai({ dimensions: 1024 }).embed(["x"], "document")
      expect(v[0]).toHaveLength(1024)
      expect(fake.embedRequests()[0].dimensions).toBe(1024)
      yield* openai({ model: "text-embedding-ada-002" }).embed(["x"], "document")
      expect(fake.embedRequests()[1].dimensions).toBeUndefined()
    }))

  it.live("decodes base64 answers sent regardless of encoding_format", () =>
    Effect.gen(function*() {
      fake.reset({ base64: true })
      const [v] = yield* openai().embed(["base64 please"], "document")
      expect(fake.embedRequests()[0].encodingFormat).toBe("float")
      expect(v).toEqual(embedLocal("base64 please", 1536).map(Math.fround))
    }))

  it.live("maps errors to reasons, with Retry-After in its forms", () =>
    Effect.gen(function*() {
      fake.reset({ apiKey: "sk-right" })
      const auth = yield* reasonOf(openai().embed(["x"], "document"))
      expect(auth).toMatchObject({ reason: "Auth", status: 401 })
      expect(auth.message).toContain("OPENAI_API_KEY")
      fake.reset({ failNext: 1, failNextStatus: 403 })
      expect((yield* reasonOf(openai().embed(["x"], "document"))).reason).toBe("Auth")

      fake.reset({ models: ["text-embedding-3-large"] })
      const missing = yield* reasonOf(openai().embed(["x"], "document"))
      expect(missing.reason).toBe("ModelNotFound")
      expect(missing.message).toContain("EMBEDDING_MODEL")

      fake.reset({ failNext: 1, failNextStatus: 429, retryAfterSeconds: 3 })
      expect(yield* reasonOf(openai().embed(["x"], "document"))).toMatchObject({
        reason: "RateLimited",
        retryAfterMs: 3000
      })
      const inTwoMinutes = new Date(Date.now() + 120_000).toUTCString()
      fake.reset({ failNext: 1, failNextStatus: 429, rateLimitHeaders: { "retry-after": inTwoMinutes } })
      const dated = yield* reasonOf(openai().embed(["x"], "document"))
      expect(dated.reason).toBe("RateLimited")
      expect(dated.retryAfterMs).toBeGreaterThan(110_000)
      expect(dated.retryAfterMs).toBeLessThanOrEqual(120_000)
      fake.reset({
        failNext: 1,
        failNextStatus: 429,
        rateLimitHeaders: { "x-ratelimit-reset-requests": "20ms", "x-ratelimit-reset-tokens": "1m30s" }
      })
      expect((yield* reasonOf(openai().embed(["x"], "document"))).retryAfterMs).toBe(90_000)

      fake.reset({ failNext: 1, failNextStatus: 503 })
      expect((yield* reasonOf(openai().embed(["x"], "document"))).reason).toBe("Transient")
      fake.reset({ poisonMarker: "POISON" })
      expect((yield* reasonOf(openai().embed(["fine", "POISON"], "document"))).reason).toBe("InvalidInput")

      const port = yield* Effect.promise(closedPort)
      const down = yield* reasonOf(openai({ baseURL: `http://127.0.0.1:${port}/v1` }).embed(["x"], "document"))
      expect(down.reason).toBe("Transient")
      expect(down.message).toContain("ECONNREFUSED")
    }))

  it.live("refuses bad responses and times out hanging requests", () =>
    Effect.gen(function*() {
      fake.reset({ wrongDimension: 10 })
      const dim = yield* reasonOf(openai().embed(["x"], "document"))
      expect(dim.reason).toBe("BadResponse")
      expect(dim.cause).toBeInstanceOf(DimensionMismatch)
      fake.reset({ wrongCount: true })
      expect((yield* reasonOf(openai().embed(["x"], "document"))).reason).toBe("BadResponse")
      fake.reset({ malformedJson: true })
      expect((yield* reasonOf(openai().embed(["x"], "document"))).reason).toBe("BadResponse")
      fake.reset({ hang: true })
      const start = Date.now()
      expect((yield* reasonOf(openai({ timeoutMs: 300 }).embed(["x"], "document"))).reason).toBe("Transient")
      expect(Date.now() - start).toBeLessThan(10_000)
      // The client's own retries are off: one request, not three.
      expect(fake.embedRequests()).toHaveLength(1)
    }))

  it.live("sends a placeholder key to a compatible server when no OPENAI_API_KEY is set", () =>
    Effect.gen(function*() {
      const provider = yield* EmbeddingProvider
      yield* provider.embed(["x"], "document")
      expect(fake.embedRequests()[0].authorization).toBe("Bearer sk-no-key-required")
      expect(provider.model).toBe("text-embedding-3-small")
      expect(provider.limits).toEqual({
        maxInputsPerRequest: 2048,
        maxTokensPerInput: 8191,
        maxTokensPerRequest: 300_000
      })
    }).pipe(
      Effect.provide(
        OpenAIProviderLive.pipe(
          Layer.provide(
            AutoEmbedConfig.make({ openaiBaseUrl: Option.some(fake.openaiBaseUrl), dimensions: 1536 })
          )
        )
      )
    ))
})

describe("fake provider server", () => {
  it.live("serial mode processes one request at a time, inputs one after another", () =>
    Effect.gen(function*() {
      fake.reset({ serial: true, perInputLatencyMs: 30 })
      const start = Date.now()
      yield* Effect.all([ollama().embed(["a", "b", "c"], "document"), ollama().embed(["d", "e", "f"], "document")], {
        concurrency: 2
      })
      // Six inputs at 30 ms each, not overlapped.
      expect(Date.now() - start).toBeGreaterThanOrEqual(175)
      expect(fake.inputCount("ollama")).toBe(6)
    }))

  it.live("fails a seeded, repeatable fraction of requests", () =>
    Effect.gen(function*() {
      const run = () =>
        Effect.forEach(Array.from({ length: 40 }, (_, i) => `t${i}`), (t) =>
          openai().embed([t], "document").pipe(
            Effect.map(() => "ok"),
            Effect.catchAll((e) => Effect.succeed(e.reason))
          ))
      fake.reset({ failureRate: 0.3, failureStatus: 429, seed: 7 })
      const first = yield* run()
      fake.reset({ failureRate: 0.3, failureStatus: 429, seed: 7 })
      expect(yield* run()).toEqual(first)
      const failed = first.filter((r) => r === "RateLimited").length
      expect(failed).toBeGreaterThan(3)
      expect(failed).toBeLessThan(25)
      expect(fake.embedRequests().filter((r) => r.status === 429)).toHaveLength(failed)
    }))
})
