import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { eventually, json, startTestServer, type TestServer } from "./support/ApiServer.js"

const expectError = async (res: Response, status: number, code?: string) => {
  expect(res.status).toBe(status)
  const body = await res.json() as any
  expect(body.error).toMatchObject({ code: expect.any(String), message: expect.any(String) })
  expect(body.error).toHaveProperty("details")
  expect(body.error.request_id).toBe(res.headers.get("x-request-id"))
  if (code) expect(body.error.code).toBe(code)
  return body.error
}

const searchFor = async (url: string, q: string, extra = "", headers: Record<string, string> = {}) => {
  const res = await fetch(`${url}/v1/search?q=${encodeURIComponent(q)}${extra}`, { headers })
  expect(res.status).toBe(200)
  return (await res.json() as any) as {
    query: string
    mode: string
    model: string
    results: Array<{ type: string; id: number; score: number; title: string | null; content: string }>
  }
}

describe("API with workers and no token", () => {
  let server: TestServer
  beforeAll(async () => {
    server = await startTestServer({ workers: true })
  })
  afterAll(async () => {
    await server?.stop()
  })

  it("answers /healthz and /readyz", async () => {
    const health = await fetch(`${server.url}/healthz`)
    expect(health.status).toBe(200)
    expect(await health.json() as any).toEqual({ status: "ok" })
    const ready = await fetch(`${server.url}/readyz`)
    expect(ready.status).toBe(200)
    const body = await ready.json() as any
    expect(body).toMatchObject({ status: "ready", database: { ok: true }, provider: { ok: true, provider: "local" } })
  })

  it("makes a posted message findable by search within seconds, with no further call", async () => {
    const content = "The zeppelin hangar sprinkler valve jammed during the quarterly inspection"
    const res = await fetch(
      `${server.url}/v1/messages`,
      json({ messages: [{ content, author: "ines", chat_id: "facilities" }] })
    )
    expect(res.status).toBe(201)
    const { ids } = await res.json() as any
    expect(ids).toHaveLength(1)
    const started = Date.now()
    const hit = await eventually(async () => {
      const found = await searchFor(server.url, "zeppelin hangar sprinkler valve", "&mode=vector&types=messages")
      return found.results.find((r) => r.id === ids[0])
    }, 30_000)
    // "Within seconds" with margin for a loaded CI machine; typically well under one second.
    expect(Date.now() - started).toBeLessThan(30_000)
    expect(hit.content).toBe(content)
    expect(hit.score).toBeGreaterThan(0.5)
  })

  it("persists an extraction and its atoms become searchable", async () => {
    const msg = await ((await fetch(
      `${server.url}/v1/messages`,
      json({
        messages: [{
          content: "Rotate the TLS certificates on the edge proxies before Friday",
          external_id: "api-test-1"
        }]
      })
    )).json() as Promise<any>)
    const res = await fetch(
      `${server.url}/v1/extractions`,
      json({
        message_ids: msg.ids,
        topics: [{ name: "Edge proxy certificates", description: "TLS rotation" }],
        atoms: [
          {
            type: "problem",
            title: "Edge proxy certificates expire on Friday",
            content: "The TLS certificates of the edge proxies expire this Friday."
          },
          {
            type: "solution",
            title: "Rotate edge proxy certificates with the renewal job",
            content: "Run the certificate renewal job against every edge proxy and reload them one by one.",
            links: [{ to: "Edge proxy certificates expire on Friday", relation: "solves" }]
          }
        ]
      })
    )
    expect(res.status).toBe(201)
    const result = await res.json() as any
    expect(result.atom_ids).toHaveLength(2)
    expect(result.topic_ids).toHaveLength(1)
    expect(result.message_ids).toEqual(msg.ids)
    const hit = await eventually(async () => {
      const found = await searchFor(server.url, "renewal job for edge proxy certificates", "&types=atoms")
      return found.results.find((r) => r.id === result.atom_ids[1])
    })
    expect(hit.title).toBe("Rotate edge proxy certificates with the renewal job")
  })

  it("refuses an extraction that names unknown message ids with 422", async () => {
    const res = await fetch(`${server.url}/v1/extractions`, json({ message_ids: [987654321], atoms: [] }))
    const error = await expectError(res, 422, "unknown_reference")
    expect(error.details).toEqual({ message_ids: [987654321] })
  })

  it("reports status per source", async () => {
    await eventually(async () => {
      const body = await ((await fetch(`${server.url}/v1/embeddings/status`)).json() as Promise<any>)
      return body.sources.messages.pending === 0 && body.sources.atoms.pending === 0 ? body : undefined
    })
    const res = await fetch(`${server.url}/v1/embeddings/status`)
    expect(res.status).toBe(200)
    const body = await res.json() as any
    expect(body.sources.messages.total).toBeGreaterThanOrEqual(2)
    expect(body.sources.messages.embedded).toBe(body.sources.messages.total)
    expect(body.queue.running).toBe(true)
    expect(body.provider).toMatchObject({ provider: "local", dimensions: 256 })
    expect(Array.isArray(body.throughput.series)).toBe(true)
  })

  it("answers a backfill dry run with counts and retry-failed with a count", async () => {
    const dry = await fetch(`${server.url}/v1/embeddings/backfill`, json({ dry_run: true }))
    expect(dry.status).toBe(200)
    const report = await dry.json() as any
    expect(report).toMatchObject({
      dry_run: true,
      total: 0,
      entity_types: { atoms: { missing: 0, stale: 0, failed: 0 }, messages: { missing: 0 } }
    })
    const retry = await fetch(`${server.url}/v1/embeddings/retry-failed`, { method: "POST" })
    expect(retry.status).toBe(200)
    expect(await retry.json() as any).toEqual({ requeued: 0 })
  })

  it("serves Prometheus metrics", async () => {
    const res = await fetch(`${server.url}/metrics`)
    expect(res.status).toBe(200)
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/)
    const text = await res.text()
    expect(text).toMatch(/^# TYPE autoembed_embeddings_total counter$/m)
    expect(text).toMatch(/^autoembed_embeddings_total\{outcome="embedded"\} [1-9]\d*$/m)
    expect(text).toMatch(/^autoembed_batch_duration_seconds_bucket\{le="\+Inf"\} [1-9]\d*$/m)
    expect(text).toMatch(/^autoembed_search_duration_seconds_count [1-9]\d*$/m)
    expect(text).toMatch(/^autoembed_queue_depth \d+$/m)
    // The workers of this process listen for NOTIFY (PGlite in-process, or PostgreSQL's LISTEN connection).
    expect(text).toMatch(/^autoembed_wakeups_live 1$/m)
    expect(text).toMatch(/^autoembed_provider_errors_total\{reason="RateLimited"\} 0$/m)
    expect(text).toMatch(/^autoembed_rows\{source="messages",state="embedded"\} \d+$/m)
    expect(text).toMatch(/^autoembed_http_requests_total\{method="GET",route="\/v1\/search",status="200"\} \d+$/m)
    // Every sample line is NAME{labels} VALUE, every family has HELP and TYPE (prom-client puts an empty line,
    // which the format ignores, between families).
    for (const line of text.trim().split("\n").filter((l) => l !== "")) {
      expect(line).toMatch(/^(# (HELP|TYPE) \w+ .+|\w+(\{[^}]*\})? -?[\d.e+]+)$/)
    }
  })

  it("echoes a caller's x-request-id and makes one up otherwise", async () => {
    const given = await fetch(`${server.url}/healthz`, { headers: { "x-request-id": "trace-abc.123" } })
    expect(given.headers.get("x-request-id")).toBe("trace-abc.123")
    const made = await fetch(`${server.url}/healthz`, { headers: { "x-request-id": "bad id with spaces" } })
    expect(made.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/)
  })

  it("accepts writes without a token when none is configured", async () => {
    const res = await fetch(`${server.url}/v1/messages`, json({ messages: [{ content: "no token needed here" }] }))
    expect(res.status).toBe(201)
  })
})

describe("API without workers, with a token and protected reads", () => {
  const token = "s3cret-token-for-tests"
  const auth = { authorization: `Bearer ${token}` }
  let server: TestServer
  beforeAll(async () => {
    server = await startTestServer({ workers: false, token, protectReads: true })
  })
  afterAll(async () => {
    await server?.stop()
  })

  it("requires the token on writes and, with AUTOEMBED_PROTECT_READS, on reads", async () => {
    await expectError(
      await fetch(`${server.url}/v1/messages`, json({ messages: [{ content: "x" }] })),
      401,
      "unauthorized"
    )
    await expectError(
      await fetch(`${server.url}/v1/messages`, json({ messages: [{ content: "x" }] }, "wrong")),
      401,
      "unauthorized"
    )
    const missing = await fetch(`${server.url}/v1/embeddings/status`)
    expect(missing.headers.get("www-authenticate")).toMatch(/^Bearer/)
    await expectError(missing, 401)
    await expectError(await fetch(`${server.url}/v1/search?q=x`), 401)
    expect((await fetch(`${server.url}/v1/embeddings/status`, { headers: auth })).status).toBe(200)
    // Probes stay open; /metrics carries row and error counts, so it is a read route like status.
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200)
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200)
    await expectError(await fetch(`${server.url}/metrics`), 401, "unauthorized")
    await expectError(
      await fetch(`${server.url}/metrics`, { headers: { authorization: "Bearer wrong" } }),
      401,
      "unauthorized"
    )
    const metrics = await fetch(`${server.url}/metrics`, { headers: auth })
    expect(metrics.status).toBe(200)
    expect(await metrics.text()).toMatch(/^# HELP autoembed_/m)
  })

  it(
    "every route answers without a token exactly as /openapi.json says: " +
      "write and read routes 401, open routes not",
    async () => {
      const doc = (await (await fetch(`${server.url}/openapi.json`)).json()) as any
      const seen: Record<string, Array<string>> = { write: [], read: [], none: [] }
      for (const [path, operations] of Object.entries<any>(doc.paths)) {
        for (const [method, op] of Object.entries<any>(operations)) {
          const url = server.url + path.replace("{id}", "bf_unknown").replace("{name}", "app.js")
          const res = await fetch(url, method === "post" ? json({}) : { method: "GET" })
          await res.arrayBuffer()
          const kind = op["x-autoembed-auth"] as "write" | "read" | "none"
          seen[kind].push(`${method} ${path}`)
          if (kind === "none") expect(res.status, `${method} ${path}`).not.toBe(401)
          else expect(res.status, `${method} ${path}`).toBe(401)
          // The document's security agrees: none for open routes, the bearer scheme (optional for reads) otherwise.
          expect(op.security, `${method} ${path}`).toEqual(
            kind === "none" ? undefined : kind === "write" ? [{ bearer: [] }] : [{ bearer: [] }, {}]
          )
        }
      }
      expect(seen.none.sort()).toEqual([
        "get /",
        "get /docs",
        "get /healthz",
        "get /openapi.json",
        "get /readyz",
        "get /static/{name}"
      ])
      expect(seen.read).toContain("get /metrics")
      expect(doc.info.description).toMatch(
        /Open routes never need it: GET \/healthz, GET \/readyz, GET \/openapi\.json, GET \/docs, GET \/, GET \/static\/\{name\}\./
      )
    }
  )

  it("backfills rows written while no worker ran, to 100%, with progress", async () => {
    const messages = Array.from(
      { length: 300 },
      (_, i) => ({ content: `Backfill row ${i}: replica lag alert on shard ${i % 7} during the nightly vacuum` })
    )
    const ingest = await fetch(`${server.url}/v1/messages`, json({ messages }, token))
    expect(ingest.status).toBe(201)

    const dry =
      (await (await fetch(`${server.url}/v1/embeddings/backfill`, json({ dry_run: true }, token))).json()) as any
    expect(dry.entity_types.messages.missing).toBe(300)
    expect(dry.total).toBe(300)

    const start = await fetch(`${server.url}/v1/embeddings/backfill`, { method: "POST", headers: auth })
    expect(start.status).toBe(202)
    const { job } = await start.json() as any
    expect(start.headers.get("location")).toBe(`/v1/embeddings/backfill/${job.id}`)
    expect(job.state).toBe("running")

    // A second run while the first is going is refused and points at the first. (On the embedded
    // database the first run may already be done: PGlite shares this process's event loop.)
    const again = await fetch(`${server.url}/v1/embeddings/backfill`, { method: "POST", headers: auth })
    if (again.status === 409) {
      const conflict = await expectError(again, 409, "backfill_running")
      expect(conflict.details.job_id).toBe(job.id)
    } else {
      expect(again.status).toBe(202)
      const first =
        (await (await fetch(`${server.url}/v1/embeddings/backfill/${job.id}`, { headers: auth })).json()) as any
      expect(first.state).not.toBe("running")
    }

    const done = await eventually(
      async () => {
        const res = await fetch(`${server.url}${start.headers.get("location")}`, { headers: auth })
        expect(res.status).toBe(200)
        const j = await res.json() as any
        expect(j.processed).toBeLessThanOrEqual(j.total)
        return j.state === "running" ? undefined : j
      },
      60_000,
      200
    )
    expect(done).toMatchObject({ state: "succeeded", total: 300, processed: 300, succeeded: 300, failed: 0 })

    const status = await ((await fetch(`${server.url}/v1/embeddings/status`, { headers: auth })).json() as Promise<any>)
    expect(status.sources.messages).toMatchObject({ total: 300, embedded: 300, pending: 0 })
    expect(status.queue.running).toBe(false)
    const found = await searchFor(server.url, "replica lag alert on shard 3", "&mode=vector", auth)
    expect(found.results.length).toBeGreaterThan(0)
  })

  it("returns 404 for an unknown backfill job", async () => {
    await expectError(
      await fetch(`${server.url}/v1/embeddings/backfill/bf_unknown`, { headers: auth }),
      404,
      "not_found"
    )
  })
})
