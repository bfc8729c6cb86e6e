import { Option, Redacted } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startFakeProviderServer } from "./fakes/FakeProviderServer.js"
import { startTestServer, type TestServer } from "./support/ApiServer.js"
import { tier } from "./support/TestDatabase.js"

/**
 * A provider outage while search is in use: the text half of a hybrid search needs no provider,
 * so hybrid answers from it and says so; vector search has nothing to answer with (503).
 */
const fake = await startFakeProviderServer()

describe(`search during a provider outage (${tier()})`, () => {
  let server: TestServer

  beforeAll(async () => {
    fake.reset({})
    server = await startTestServer({
      config: {
        provider: "openai",
        openaiApiKey: Option.some(Redacted.make("sk-test")),
        openaiBaseUrl: Option.some(fake.openaiBaseUrl),
        model: Option.some("text-embedding-3-small"),
        dimensions: 64,
        retries: 1,
        retryBaseMs: 10,
        retryMaxMs: 50
      }
    })
    const saved = await fetch(`${server.url}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        messages: [
          { content: "The nightly database migration failed on the billing schema" },
          { content: "Lunch order for the team offsite" }
        ]
      })
    })
    expect(saved.status).toBe(201)
    const deadline = Date.now() + 30_000
    while (Date.now() < deadline) {
      const status = await (await fetch(`${server.url}/v1/embeddings/status`)).json() as {
        sources: { messages: { embedded: number } }
      }
      if (status.sources.messages.embedded === 2) break
      await new Promise((r) => setTimeout(r, 50))
    }
  }, 60_000)
  afterAll(async () => {
    await server?.stop()
    await fake.close()
  })

  const search = (query: string) => fetch(`${server.url}/v1/search?${query}`)

  it("while the provider is healthy, hybrid search is not degraded", async () => {
    const body = await (await search("q=database+migration&mode=hybrid")).json() as {
      degraded?: string
      results: Array<{ content: string }>
    }
    expect(body.degraded).toBeUndefined()
    expect(body.results[0].content).toMatch(/migration failed/)
  })

  it(
    "provider down: hybrid answers 200 from text with `degraded`; " +
      "vector answers 503 with the provider's state",
    async () => {
      fake.reset({ failureRate: 1, failureStatus: 500 })
      try {
        const hybrid = await search("q=billing+schema+migration&mode=hybrid")
        expect(hybrid.status).toBe(200)
        const body = await hybrid.json() as { degraded?: string; results: Array<{ content: string }> }
        expect(body.degraded).toMatch(/^vector leg unavailable: Transient/)
        expect(body.results.map((r) => r.content)).toEqual([
          "The nightly database migration failed on the billing schema"
        ])

        const vector = await search("q=billing+schema+migration+again&mode=vector")
        expect(vector.status).toBe(503)
        const error = await vector.json() as { error: { code: string; details: { reason: string } } }
        expect(error.error.code).toBe("provider_unavailable")
        expect(error.error.details.reason).toBe("Transient")
      } finally {
        fake.reset({})
      }
    }
  )
})
