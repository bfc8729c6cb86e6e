import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ApiClientError, type Client, makeClient } from "../packages/api/src/contract/index.js"
import { vectorTableName } from "../packages/core/src/storage/State.js"
import { type FakeProviderServer, startFakeProviderServer } from "./fakes/FakeProviderServer.js"
import { eventually, json, startTestServer, type TestServer } from "./support/ApiServer.js"
import { tier } from "./support/TestDatabase.js"

/**
 * Embedding sets over HTTP (issue 18): a second set embedded by another provider at other
 * dimensions is added, filled by the running workers, searched with ?set=, activated, rolled back
 * and dropped, all through the contract (typed client and raw requests alike, every answer checked
 * against /openapi.json by startTestServer), with status, /metrics and the page showing each set.
 */

const MESSAGES = [
  "The staging deploy failed because the migration locked the users table",
  "Checkout returned 502 after the release; the payment gateway timed out",
  "Rotate the TLS certificates on the edge proxies before Friday",
  "The nightly backup job ran out of disk on the replica",
  "Search latency doubled after the HNSW index was rebuilt with a smaller m",
  "A poison message kept the queue worker crashing until it was skipped",
  "The lighthouse lens rotation motor overheated after the storm",
  "Grafana alerts fired for every pod when the node pool was drained"
]

const expectError = async (res: Response, status: number, code: string) => {
  expect(res.status).toBe(status)
  const body = await res.json() as any
  expect(body.error.code).toBe(code)
  expect(body.error.request_id).toBe(res.headers.get("x-request-id"))
  return body.error as { code: string; message: string; details: unknown }
}

const caught = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e as ApiClientError)

/** Relations (tables, indexes) of these names that exist in the server's database. */
const relations = async (server: TestServer, names: ReadonlyArray<string>) => {
  const rows = await server.runtime.runPromise(
    Effect.flatMap(
      SqlClient.SqlClient,
      (sql) => sql<{ relname: string }>`SELECT relname FROM pg_class WHERE relname IN ${sql.in(names)}`
    )
  )
  return rows.map((r) => r.relname).sort()
}

const setPath = (source: string, set: string) => `/v1/sets/${encodeURIComponent(source)}/${encodeURIComponent(set)}`

const ingest = async (server: TestServer, contents: ReadonlyArray<string>, token?: string) => {
  const res = await fetch(
    `${server.url}/v1/messages`,
    json({ messages: contents.map((content) => ({ content })) }, token)
  )
  expect(res.status).toBe(201)
}

describe(`embedding sets over HTTP, with workers (${tier()})`, () => {
  let fake: FakeProviderServer
  let server: TestServer
  let client: Client
  const second = "messages@text-embedding-3-small"
  let key = ""
  let indexName = ""

  beforeAll(async () => {
    fake = await startFakeProviderServer()
    server = await startTestServer({ workers: true })
    client = makeClient({ baseUrl: server.url })
    await ingest(server, MESSAGES)
    await eventually(async () => {
      const status = await client.status({})
      return status.body.sources.messages.embedded === MESSAGES.length ? true : undefined
    }, 30_000)
  }, 120_000)
  afterAll(async () => {
    await server?.stop()
    await fake?.close()
  })

  it("lists the configured set of every source, active", async () => {
    const { body } = await client.listSets({ query: { source: "messages" } })
    expect(body.sets).toHaveLength(1)
    expect(body.sets[0]).toMatchObject({
      source: "messages",
      name: "messages@local-hash-v1",
      provider: "local",
      dimensions: 256,
      configured: true,
      active: true,
      phase: "active",
      embedded: MESSAGES.length,
      missing: 0
    })
    const all = await client.listSets({ query: {} })
    expect(new Set(all.body.sets.map((s) => s.source))).toEqual(new Set(["messages", "atoms"]))
    const unknown = await caught(client.listSets({ query: { source: "nonesuch" } }))
    expect(unknown).toMatchObject({ status: 404, code: "set_not_found" })
  })

  it("adds a set of another provider and dimensions; the running workers fill it", async () => {
    const added = await client.addSet({
      body: {
        source: "messages",
        provider: "openai",
        model: "text-embedding-3-small",
        dimensions: 64,
        base_url: fake.openaiBaseUrl
      }
    })
    expect(added.status).toBe(201)
    expect(added.body).toMatchObject({
      name: second,
      provider: "openai",
      dimensions: 64,
      baseUrl: fake.openaiBaseUrl,
      storage: "internal",
      configured: false,
      active: false,
      total: MESSAGES.length
    })
    key = added.body.key
    indexName = added.body.index.name
    const ready = await eventually(async () => {
      const { body } = await client.getSet({ params: { source: "messages", set: second } })
      return body.phase === "ready" ? body : undefined
    }, 30_000)
    expect(ready).toMatchObject({ embedded: MESSAGES.length, missing: 0, stale: 0, failed: 0, progress: 1 })
    expect(ready.index).toMatchObject({ exists: true, valid: true })
    expect(ready.index.sizeBytes).toBeGreaterThan(0)
    expect(ready.storageBytes).toBe(MESSAGES.length * (4 * 64 + 8))
    expect(ready.tableBytes).toBeGreaterThan(0)
    // The fake embedded every row for the set, at the set's dimensions.
    const asked = fake.embedRequests("openai")
    expect(asked.every((r) => r.dimensions === 64 && r.model === "text-embedding-3-small")).toBe(true)
    expect(fake.inputCount("openai")).toBeGreaterThanOrEqual(MESSAGES.length)
  })

  it("refuses a taken name, an unknown source, a bad body and a provider that cannot embed", async () => {
    const body = {
      source: "messages",
      provider: "openai",
      model: "text-embedding-3-small",
      base_url: fake.openaiBaseUrl
    }
    const again = await fetch(`${server.url}/v1/sets`, json({ ...body, name: second }))
    expect((await expectError(again, 409, "set_conflict")).message).toContain(second)
    await expectError(await fetch(`${server.url}/v1/sets`, json({ ...body, source: "nonesuch" })), 404, "set_not_found")
    const invalid = await expectError(
      await fetch(`${server.url}/v1/sets`, json({ source: "messages", provider: "cohere", model: "", dimensions: 0 })),
      422,
      "validation_failed"
    )
    expect((invalid.details as Array<{ path: string }>).map((d) => d.path).sort()).toEqual(
      ["dimensions", "model", "provider"]
    )
    await expectError(await fetch(`${server.url}/v1/sets`, json({ ...body, colour: "blue" })), 422, "validation_failed")
    const local = await expectError(
      await fetch(`${server.url}/v1/sets`, json({ source: "messages", provider: "local", model: "nomic" })),
      400,
      "set_invalid"
    )
    expect(local.message).toMatch(/dimensions|local/)
  })

  it("searches the named set with ?set=, the active one without, and answers 404 for an unknown set", async () => {
    const q = encodeURIComponent("payment gateway timed out")
    const viaSet = await fetch(
      `${server.url}/v1/search?q=${q}&mode=vector&types=messages&set=${encodeURIComponent(second)}`
    )
    expect(viaSet.status).toBe(200)
    const found = await viaSet.json() as any
    expect(found.model).toBe("openai/text-embedding-3-small")
    expect(found.results.length).toBeGreaterThan(0)
    expect(found.results[0].content).toBe(MESSAGES[1])
    const typed = await client.search({ query: { q: "payment gateway timed out", types: ["messages"], set: second } })
    expect(typed.body.model).toBe("openai/text-embedding-3-small")
    const active = await client.search({ query: { q: "payment gateway timed out", types: ["messages"] } })
    expect(active.body.model).toBe("local/local-hash-v1")
    const unknown = await fetch(`${server.url}/v1/search?q=${q}&types=messages&set=messages%40nonesuch`)
    expect((await expectError(unknown, 404, "set_not_found")).message).toContain(second)
    await expectError(await fetch(`${server.url}/v1/search?q=${q}&set=`), 422, "validation_failed")
  })

  it("compares the two sets through POST /v1/sets/compare: sampled, and with judged queries", async () => {
    const sampled = await client.compareSets({
      body: { source: "messages", a: "messages@local-hash-v1", b: second, sample: 5 }
    })
    expect(sampled.body).toMatchObject({ source: "messages", queries: 5, querySource: "sampled" })
    expect(sampled.body.overlapAt10).toBeGreaterThanOrEqual(0)
    expect(sampled.body.overlapAt10).toBeLessThanOrEqual(1)
    expect(sampled.body.a).toMatchObject({ name: "messages@local-hash-v1", dimensions: 256, embedded: 8, total: 8 })
    expect(sampled.body.b).toMatchObject({
      name: second,
      provider: "openai",
      model: "text-embedding-3-small",
      dimensions: 64
    })
    expect(sampled.body.b.indexBytes).toBeGreaterThan(0)
    expect(sampled.body.a.ndcgAt10).toBeUndefined()

    // The wire: snake_case, and nDCG@10 / recall@10 once the queries carry judgements.
    const ids = (await client.search({ query: { q: MESSAGES[1], types: ["messages"], mode: "text", limit: 1 } }))
      .body.results.map((r) => String(r.id))
    const res = await fetch(
      `${server.url}/v1/sets/compare`,
      json({
        source: "messages",
        a: "messages@local-hash-v1",
        b: second,
        queries: [{ text: "payment gateway timed out", relevant: { [ids[0]]: 1 } }]
      })
    )
    expect(res.status).toBe(200)
    const judged = await res.json() as any
    expect(judged).toMatchObject({ queries: 1, query_source: "given", overlap_at_10: expect.any(Number) })
    expect(judged.a).toMatchObject({ latency_p50_ms: expect.any(Number), recall_at_10: 1 })
    expect(judged.b.ndcg_at_10).toBeGreaterThan(0)

    const unknown = await caught(client.compareSets({ body: { source: "messages", a: second, b: "messages@x" } }))
    expect(unknown).toMatchObject({ status: 404, code: "set_not_found" })
    const invalid = await fetch(`${server.url}/v1/sets/compare`, json({ source: "messages", a: second, sample: 0 }))
    const problems = (await expectError(invalid, 422, "validation_failed")).details as Array<{ path: string }>
    expect(problems.map((p) => p.path).sort()).toEqual(["b", "sample"])
  })

  it("shows both sets in status, /metrics and on the page", async () => {
    const status = await client.status({})
    const names = status.body.sets.filter((s) => s.source === "messages").map((s) => [s.name, s.active])
    expect(names).toEqual([["messages@local-hash-v1", true], [second, false]])
    const raw = await (await fetch(`${server.url}/v1/embeddings/status`)).json() as any
    const wire = raw.sets.find((s: any) => s.name === second)
    expect(wire).toMatchObject({
      base_url: fake.openaiBaseUrl,
      storage_bytes: MESSAGES.length * (4 * 64 + 8),
      table_bytes: expect.any(Number),
      vector_column: null
    })
    expect(wire.index).toHaveProperty("size_bytes")

    const metrics = String((await client.metrics({})).body)
    const label = `source="messages",set="${second}"`
    expect(metrics).toContain(`autoembed_set_active{${label}} 0`)
    expect(metrics).toContain(`autoembed_set_active{source="messages",set="messages@local-hash-v1"} 1`)
    expect(metrics).toContain(`autoembed_set_rows{${label},state="embedded"} ${MESSAGES.length}`)
    expect(metrics).toContain(`autoembed_set_rows{${label},state="missing"} 0`)
    expect(metrics).toContain(`autoembed_set_progress{${label}} 1`)
    expect(metrics).toMatch(new RegExp(`autoembed_set_index_bytes\\{${label}\\} [1-9]`))
    expect(metrics).toContain(`autoembed_set_storage_bytes{${label}} ${MESSAGES.length * (4 * 64 + 8)}`)
    expect(metrics).toMatch(new RegExp(`autoembed_set_table_bytes\\{${label}\\} [1-9]`))
    expect(metrics).toContain(`autoembed_set_info{${label},provider="openai",model="text-embedding-3-small"`)
    // The existing series are unchanged.
    expect(metrics).toMatch(/autoembed_rows\{source="messages",state="embedded"\} 8/)

    // The page renders the status report's sets into its table (app.js; the browser test drives it).
    const page = String((await client.page({})).body)
    expect(page).toContain(`<table id="sets"`)
    expect(String((await client.asset({ params: { name: "app.js" } })).body)).toContain("renderSets(body.sets)")
  })

  it("activates the set (search then reads it), rolls back at once, and cannot drop the active set", async () => {
    const activated = await client.activateSet({ params: { source: "messages", set: second } })
    expect(activated.body).toMatchObject({ name: second, active: true, phase: "active" })
    const search = await client.search({ query: { q: "payment gateway timed out", types: ["messages"] } })
    expect(search.body.model).toBe("openai/text-embedding-3-small")
    expect(search.body.results[0].content).toBe(MESSAGES[1])
    const metrics = String((await client.metrics({})).body)
    expect(metrics).toContain(`autoembed_set_active{source="messages",set="${second}"} 1`)

    const dropActive = await caught(client.dropSet({ params: { source: "messages", set: second } }))
    expect(dropActive).toMatchObject({ status: 409, code: "set_conflict" })

    const back = await client.rollbackSet({ params: { source: "messages" } })
    expect(back.body).toMatchObject({ name: "messages@local-hash-v1", active: true })
    const after = await client.search({ query: { q: "payment gateway timed out", types: ["messages"] } })
    expect(after.body.model).toBe("local/local-hash-v1")
    const sets = (await client.listSets({ query: { source: "messages" } })).body.sets
    expect(sets.find((s) => s.name === second)).toMatchObject({ active: false, previous: true, phase: "ready" })
  })

  it("drops the retired set: its vectors table and HNSW index are gone, and so are its series", async () => {
    const table = vectorTableName(key)
    expect(await relations(server, [table, indexName])).toEqual([table, indexName].sort())
    const configured = await caught(client.dropSet({ params: { source: "messages", set: "messages@local-hash-v1" } }))
    expect(configured).toMatchObject({ status: 409, code: "set_conflict" })

    // A raw request with the name's @ unencoded: path parameters are decoded either way.
    const res = await fetch(`${server.url}/v1/sets/messages/${second}`, { method: "DELETE" })
    expect(res.status).toBe(200)
    expect(await res.json()).toEqual({ dropped: second, key })
    expect(await relations(server, [table, indexName])).toEqual([])
    const [left] = await server.runtime.runPromise(Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql<{ n: number }>`
        SELECT (SELECT count(*) FROM information_schema.tables WHERE table_name = ${table})::int
             + (SELECT count(*) FROM autoembed.queue WHERE source = ${key})::int
             + (SELECT count(*) FROM autoembed.sets WHERE key = ${key})::int AS n`))
    expect(left.n).toBe(0)

    await expectError(await fetch(`${server.url}${setPath("messages", second)}`), 404, "set_not_found")
    const metrics = String((await client.metrics({})).body)
    expect(metrics).not.toContain(second)
    const rollback = await caught(client.rollbackSet({ params: { source: "messages" } }))
    expect(rollback).toMatchObject({ status: 409, code: "set_conflict" })
    // Search on the active set is untouched.
    const search = await client.search({ query: { q: "payment gateway timed out", types: ["messages"] } })
    expect(search.body.results[0].content).toBe(MESSAGES[1])
  })
})

describe(`embedding sets over HTTP, API process without workers, with a token (${tier()})`, () => {
  const TOKEN = "sets-test-token"
  let server: TestServer
  let client: Client
  let anonymous: Client

  beforeAll(async () => {
    server = await startTestServer({ workers: false, token: TOKEN })
    client = makeClient({ baseUrl: server.url, token: TOKEN })
    anonymous = makeClient({ baseUrl: server.url })
    await ingest(server, MESSAGES.slice(0, 5), TOKEN)
  }, 120_000)
  afterAll(async () => {
    await server?.stop()
  })

  it("needs the token to add, compare, activate, roll back and drop; reads stay open", async () => {
    expect((await anonymous.listSets({ query: {} })).status).toBe(200)
    const body = { source: "messages", provider: "local", model: "local-hash-v1", dimensions: 48 } as const
    const refused = await Promise.all([
      caught(anonymous.addSet({ body })),
      caught(anonymous.activateSet({ params: { source: "messages", set: "messages@local-hash-v1" } })),
      caught(anonymous.rollbackSet({ params: { source: "messages" } })),
      caught(anonymous.dropSet({ params: { source: "messages", set: "messages@local-hash-v1" } })),
      // Compare reads, but spends both providers' budget on its queries: it takes the token too.
      caught(anonymous.compareSets({ body: { source: "messages", a: "messages@local-hash-v1", b: "x" } }))
    ])
    for (const e of refused) expect(e).toMatchObject({ status: 401, code: "unauthorized" })
    expect((await client.listSets({ query: { source: "messages" } })).body.sets).toHaveLength(1)
  })

  /** Runs a backfill job in the API process (it has no workers) and waits for its end. */
  const backfill = async (body: { set?: string }) => {
    const started = await client.backfill({ body })
    if (started.status !== 202) throw new Error(`backfill answered ${started.status}`)
    return eventually(async () => {
      const job = await client.getBackfill({ params: { id: started.body.job.id } })
      return job.body.state === "running" ? undefined : job.body
    }, 30_000)
  }

  it("refuses to activate an incomplete set with 409 naming the missing rows, unless forced", async () => {
    // The active set has every row: a set with none of them would lose search all of its answers.
    expect((await backfill({})).state).toBe("succeeded")
    // The configured set's name is taken, so the default name gets the dimensions: `@` and `:` in it.
    const added = await client.addSet({
      body: { source: "messages", provider: "local", model: "local-hash-v1", dimensions: 48 }
    })
    const name = added.body.name
    expect(name).toBe("messages@local-hash-v1:48")
    expect(added.body).toMatchObject({ phase: "building", missing: 5, embedded: 0 })

    const refused = await fetch(`${server.url}/v1/sets/messages/${name}/activate`, json({}, TOKEN))
    const error = await expectError(refused, 409, "set_conflict")
    expect(error.message).toContain("5 of 5 rows have no vector yet")
    await expectError(
      await fetch(`${server.url}${setPath("messages", name)}/activate`, json({ force: "yes" }, TOKEN)),
      422,
      "validation_failed"
    )

    const forced = await client.activateSet({ params: { source: "messages", set: name }, body: { force: true } })
    expect(forced.body).toMatchObject({ name, active: true, missing: 5 })
    const back = await client.rollbackSet({ params: { source: "messages" } })
    expect(back.body.name).toBe("messages@local-hash-v1")
  })

  it("fills a set with a backfill of that set, then activates it without force", async () => {
    const name = "messages@local-hash-v1:48"
    const done = await backfill({ set: name })
    expect(done.state).toBe("succeeded")
    const set = await client.getSet({ params: { source: "messages", set: name } })
    expect(set.body).toMatchObject({ phase: "ready", embedded: 5, missing: 0 })
    const activated = await client.activateSet({ params: { source: "messages", set: name } })
    expect(activated.body.active).toBe(true)
    const search = await client.search({ query: { q: "certificates on the edge proxies", types: ["messages"] } })
    expect(search.body.results[0].content).toBe(MESSAGES[2])
  })

  it("answers unknown and over-long names with 404, as the contract documents", async () => {
    const long = "x".repeat(300)
    const answers = await Promise.all([
      caught(client.getSet({ params: { source: "messages", set: "messages@nonesuch" } })),
      caught(client.getSet({ params: { source: "nonesuch", set: "messages@local-hash-v1" } })),
      caught(client.getSet({ params: { source: "messages", set: long } })),
      caught(client.activateSet({ params: { source: "messages", set: long } })),
      caught(client.dropSet({ params: { source: long, set: "x" } })),
      caught(client.rollbackSet({ params: { source: "nonesuch" } })),
      caught(client.activateSet({ params: { source: "nonesuch", set: "messages@local-hash-v1" } })),
      caught(client.dropSet({ params: { source: "nonesuch", set: "messages@local-hash-v1" } })),
      caught(client.compareSets({ body: { source: "nonesuch", a: "x", b: "y" } }))
    ])
    for (const e of answers) expect(e).toMatchObject({ status: 404, code: "set_not_found" })
  })
})
