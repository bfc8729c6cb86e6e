import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, Option, Redacted } from "effect"
import { afterAll, beforeAll, beforeEach } from "vitest"
import { AutoEmbedConfig, type AutoEmbedConfigShape } from "../packages/core/src/config/AutoEmbedConfig.js"
import { EmbeddingProvider, ProviderStartupError } from "../packages/core/src/providers/EmbeddingProvider.js"
import { EmbeddingProviderLive } from "../packages/core/src/providers/index.js"
import { FakeProviderServer } from "./fakes/FakeProviderServer.js"

const fake = new FakeProviderServer()
beforeAll(() => fake.start())
afterAll(() => fake.close())
beforeEach(() => fake.reset())

/** Builds EmbeddingProviderLive for a configuration; returns the provider, the error, and the log lines. */
const start = (overrides: Partial<AutoEmbedConfigShape>) =>
  Effect.gen(function*() {
    const logs: Array<string> = []
    const logger = Logger.make(({ message }) => logs.push(String(Array.isArray(message) ? message.join(" ") : message)))
    const began = Date.now()
    const result = yield* EmbeddingProvider.pipe(
      Effect.provide(EmbeddingProviderLive.pipe(Layer.provide(AutoEmbedConfig.make(overrides)))),
      Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
      Effect.either
    )
    return { result, logs, ms: Date.now() - began }
  })

const startupError = (overrides: Partial<AutoEmbedConfigShape>) =>
  Effect.gen(function*() {
    const { ms, result } = yield* start(overrides)
    if (result._tag === "Right") throw new Error("expected start-up to fail")
    expect(result.left).toBeInstanceOf(ProviderStartupError)
    expect(result.left.message).not.toContain("\n")
    return { message: result.left.message, ms }
  })

describe("EmbeddingProviderLive: selection and start-up probe", () => {
  it.live("fails fast with one line for an unreachable Ollama", () =>
    Effect.gen(function*() {
      const { message, ms } = yield* startupError({ provider: "ollama", ollamaHost: "http://127.0.0.1:9" })
      expect(message).toBe(
        "Ollama at http://127.0.0.1:9 is not reachable from this process (bad port). Set OLLAMA_HOST to a running Ollama, or EMBEDDING_PROVIDER=local for the offline provider."
      )
      // Generous for a loaded CI machine; the point is no 30 s request timeout and no retries.
      expect(ms).toBeLessThan(10_000)
    }))

  it.live("fails with the setting to change when the model's dimension differs", () =>
    Effect.gen(function*() {
      const { message } = yield* startupError({
        provider: "ollama",
        ollamaHost: fake.ollamaHost,
        model: Option.some("nomic-embed-text"),
        dimensions: 1024
      })
      expect(message).toBe(
        "model nomic-embed-text returns 768-dimensional vectors but EMBEDDING_DIMENSIONS is 1024: " +
          "set EMBEDDING_DIMENSIONS=768 (then `pnpm cli migrate`)"
      )
      expect(fake.embedRequests()).toHaveLength(1)
    }))

  it.live("fails for an unknown model and for a bad key", () =>
    Effect.gen(function*() {
      fake.reset({ models: ["all-minilm"] })
      const missing = yield* startupError({ provider: "ollama", ollamaHost: fake.ollamaHost })
      expect(missing.message).toContain("ollama pull mxbai-embed-large")

      fake.reset({ apiKey: "sk-right" })
      const bad = yield* startupError({
        provider: "openai",
        openaiBaseUrl: Option.some(fake.openaiBaseUrl),
        openaiApiKey: Option.some(Redacted.make("sk-wrong"))
      })
      expect(bad.message).toContain("OPENAI_API_KEY")
      expect(bad.message).toContain("401")
    }))

  it.live("refuses OpenAI without a key or base URL, and more dimensions than the model has", () =>
    Effect.gen(function*() {
      const noKey = yield* startupError({ provider: "openai" })
      expect(noKey.message).toContain("OPENAI_API_KEY")
      const tooMany = yield* startupError({
        provider: "openai",
        openaiBaseUrl: Option.some(fake.openaiBaseUrl),
        dimensions: 2000
      })
      expect(tooMany.message).toContain("EMBEDDING_DIMENSIONS=1536 or less")
      expect(fake.embedRequests()).toHaveLength(0)
    }))

  it.live("starts OpenAI-compatible with the dimensions parameter", () =>
    Effect.gen(function*() {
      const { result } = yield* start({ provider: "openai", openaiBaseUrl: Option.some(fake.openaiBaseUrl) })
      if (result._tag === "Left") throw new Error(result.left.message)
      expect(result.right).toMatchObject({ provider: "openai", model: "text-embedding-3-small", dimensions: 1024 })
      expect(fake.embedRequests()[0]).toMatchObject({ inputs: ["autoembed probe"], dimensions: 1024 })
    }))

  it.live("a 429 during the probe does not stop start-up", () =>
    Effect.gen(function*() {
      fake.reset({ failNext: 1, failNextStatus: 429 })
      const { result } = yield* start({ provider: "ollama", ollamaHost: fake.ollamaHost })
      expect(result._tag).toBe("Right")
    }))

  it.live("auto picks Ollama when it answers, and says why", () =>
    Effect.gen(function*() {
      const { result, logs } = yield* start({ provider: "auto", ollamaHost: fake.ollamaHost })
      if (result._tag === "Left") throw new Error(result.left.message)
      expect(result.right.provider).toBe("ollama")
      expect(result.right.model).toBe("mxbai-embed-large")
      expect(logs.join("\n")).toContain(`Ollama 0.12.6 answered at ${fake.ollamaHost}`)
    }))

  it.live("auto falls back to OpenAI when configured, else to Local, quickly", () =>
    Effect.gen(function*() {
      const toOpenAI = yield* start({
        provider: "auto",
        ollamaHost: "http://127.0.0.1:9",
        openaiBaseUrl: Option.some(fake.openaiBaseUrl)
      })
      if (toOpenAI.result._tag === "Left") throw new Error(toOpenAI.result.left.message)
      expect(toOpenAI.result.right.provider).toBe("openai")

      const toLocal = yield* start({ provider: "auto", ollamaHost: "http://127.0.0.1:9" })
      if (toLocal.result._tag === "Left") throw new Error(toLocal.result.left.message)
      expect(toLocal.result.right).toMatchObject({ provider: "local", model: "local-hash-v1", dimensions: 1024 })
      expect(toLocal.ms).toBeLessThan(10_000)
      expect(toLocal.logs.join("\n")).toContain("no Ollama answered at http://127.0.0.1:9")
    }))

  it.live("auto does not swap a named model for the local one", () =>
    Effect.gen(function*() {
      const { message } = yield* startupError({
        provider: "auto",
        ollamaHost: "http://127.0.0.1:9",
        model: Option.some("mxbai-embed-large")
      })
      expect(message).toContain("EMBEDDING_MODEL=mxbai-embed-large")
      expect(message).toContain("OLLAMA_HOST")
    }))

  it.live("local refuses another EMBEDDING_MODEL", () =>
    Effect.gen(function*() {
      const { message } = yield* startupError({ provider: "local", model: Option.some("mxbai-embed-large") })
      expect(message).toContain("EMBEDDING_MODEL=mxbai-embed-large")
      expect(message).toContain("local-hash-v1")
    }))
})
