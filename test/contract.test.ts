import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Api, ApiClientError, type Client, makeClient } from "../packages/api/src/contract/index.js"
import { eventually, startTestServer, type TestServer } from "./support/ApiServer.js"
import { validateInDocument } from "./support/Contract.js"

/**
 * The contract from the client's side: every operation called through the typed client (whose
 * answers are decoded by the same schemas), each answer also validated against /openapi.json by
 * the suite-wide check in startTestServer; and the check itself shown to catch a missing field.
 */
describe("one contract: typed client, server and /openapi.json agree", () => {
  let server: TestServer
  let client: Client
  beforeAll(async () => {
    server = await startTestServer({ workers: true })
    client = makeClient({ baseUrl: server.url })
  })
  afterAll(async () => {
    await server?.stop()
  })

  it("ingests, embeds and finds a message through the typed client", async () => {
    const content = "The lighthouse lens rotation motor overheated after the storm"
    const saved = await client.ingestMessages({ body: { messages: [{ content, author: "mara", chat_id: "keepers" }] } })
    expect(saved.status).toBe(201)
    expect(saved.body.ids).toHaveLength(1)
    expect(saved.requestId).not.toBe("")
    const hit = await eventually(async () => {
      const found = await client.search({ query: { q: "lighthouse lens motor overheated", mode: "vector", limit: 5 } })
      return found.body.results.find((r) => r.id === saved.body.ids[0])
    }, 30_000)
    expect(hit.content).toBe(content)

    const extraction = await client.persistExtraction({
      body: { topics: [{ name: "lighthouse maintenance" }], message_ids: saved.body.ids }
    })
    expect(extraction.status).toBe(201)
    expect(extraction.body.topicIds).toHaveLength(1)
  })

  it("runs a backfill from dry run to completion and reads status and retries", async () => {
    const dry = await client.backfill({ body: { dry_run: true } })
    expect(dry.status).toBe(200)
    if (dry.status !== 200) throw new Error("dry run")
    expect(dry.body.dryRun).toBe(true)
    const started = await client.backfill({})
    expect(started.status).toBe(202)
    if (started.status !== 202) throw new Error("start")
    const done = await eventually(async () => {
      const job = await client.getBackfill({ params: { id: started.body.job.id } })
      return job.body.state === "running" ? undefined : job.body
    }, 30_000)
    expect(done.state).toBe("succeeded")
    const status = await client.status({})
    expect(status.body.sources.messages.embedded).toBeGreaterThanOrEqual(1)
    expect((await client.retryFailed({ body: { entity_types: ["messages"] } })).body.requeued).toBe(0)
  })

  it("serves the operations pages, metrics and probes as documented", async () => {
    expect((await client.health({})).body).toEqual({ status: "ok" })
    expect((await client.ready({})).body.status).toBe("ready")
    expect((await client.metrics({})).body).toContain("autoembed_")
    const doc = JSON.parse(String((await client.openapi({})).body))
    expect(Object.values(Api).map((e) => `${e.method} ${e.path}`).sort()).toEqual(
      Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops as object).map((m) => `${m} ${p}`)).sort()
    )
    expect((await client.docs({})).body).toContain("autoembed API")
    expect((await client.page({})).body).toContain("<!doctype html>")
    expect((await client.asset({ params: { name: "app.js" } })).body).toContain("fetch(")
  })

  it("rejects error answers with the server's code, status and request id", async () => {
    const missing = await client.getBackfill({ params: { id: "bf_nope" } }).catch((e) => e)
    expect(missing).toBeInstanceOf(ApiClientError)
    expect(missing).toMatchObject({ status: 404, code: "not_found" })
    expect(missing.requestId).not.toBe("")
    const invalid = await client.search({ query: { q: "x", limit: 500 } }).catch((e) => e)
    expect(invalid).toMatchObject({ status: 422, code: "validation_failed" })
    expect(invalid.details).toEqual([{ path: "limit", message: "limit must be a whole number from 1 to 100" }])
  })

  it("fails validation when the document loses a field the server sends", async () => {
    const doc = await (await fetch(`${server.url}/openapi.json`)).json() as any
    const report = (await client.status({})).body
    const schemaPath = ["components", "schemas", "StatusReport"]
    const encoded = await (await fetch(`${server.url}/v1/embeddings/status`)).json()
    expect(await validateInDocument(doc, schemaPath, encoded)).toBe(true)
    // Remove generated_at from the schema, as a careless edit of the contract would.
    const status = doc.components.schemas.StatusReport
    delete status.properties.generated_at
    status.required = status.required.filter((k: string) => k !== "generated_at")
    expect(report.generatedAt).toBeTypeOf("string")
    expect(await validateInDocument(doc, schemaPath, encoded)).toBe(false)
  })
})
