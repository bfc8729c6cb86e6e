import { SqlError } from "@effect/sql/SqlError"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { mapError } from "../packages/api/src/Errors.js"
import { startTestServer, type TestServer } from "./support/ApiServer.js"

/**
 * Malformed and hostile requests against the real server. Each must get its documented status
 * with the one error shape, and the server must keep serving afterwards.
 */
const TOKEN = "hostile-test-token-0123456789"
const AUTH = { authorization: `Bearer ${TOKEN}` }
const JSON_AUTH = { ...AUTH, "content-type": "application/json" }

interface Case {
  readonly name: string
  readonly method?: string
  readonly path: string
  readonly headers?: Record<string, string>
  readonly body?: string | (() => NonNullable<RequestInit["body"]>)
  readonly status: number
  readonly code?: string
}

const msg = (m: unknown) => JSON.stringify({ messages: [m] })
const big = "x".repeat(2 * 1024 * 1024)
const nested = (depth: number) => "[".repeat(depth) + "]".repeat(depth)

const cases: ReadonlyArray<Case> = [
  // Body parsing and media types
  {
    name: "bad JSON",
    method: "POST",
    path: "/v1/messages",
    headers: JSON_AUTH,
    body: "{bad",
    status: 400,
    code: "invalid_json"
  },
  {
    name: "truncated JSON",
    method: "POST",
    path: "/v1/messages",
    headers: JSON_AUTH,
    body: "{\"messages\":[{\"content\":\"x\"}",
    status: 400,
    code: "invalid_json"
  },
  {
    name: "JSON null",
    method: "POST",
    path: "/v1/messages",
    headers: JSON_AUTH,
    body: "null",
    status: 422,
    code: "validation_failed"
  },
  {
    name: "JSON array instead of object",
    method: "POST",
    path: "/v1/messages",
    headers: JSON_AUTH,
    body: "[]",
    status: 422
  },
  { name: "JSON string", method: "POST", path: "/v1/messages", headers: JSON_AUTH, body: "\"hello\"", status: 422 },
  {
    name: "empty body",
    method: "POST",
    path: "/v1/messages",
    headers: JSON_AUTH,
    body: "",
    status: 400,
    code: "empty_body"
  },
  {
    name: "text/plain body",
    method: "POST",
    path: "/v1/messages",
    headers: { ...AUTH, "content-type": "text/plain" },
    body: msg({ content: "x" }),
    status: 415,
    code: "unsupported_media_type"
  },
  {
    name: "no content type",
    method: "POST",
    path: "/v1/messages",
    headers: AUTH,
    body: () => new Blob([msg({ content: "x" })]),
    status: 415
  },
  {
    name: "form-urlencoded",
    method: "POST",
    path: "/v1/extractions",
    headers: { ...AUTH, "content-type": "application/x-www-form-urlencoded" },
    body: "a=1",
    status: 415
  },
  {
    name: "multipart",
    method: "POST",
    path: "/v1/embeddings/backfill",
    headers: { ...AUTH, "content-type": "multipart/form-data; boundary=x" },
    body: "--x--",
    status: 415
  },
  {
    name: "2 MiB body with content-length",
    method: "POST",
    path: "/v1/messages",
    headers: JSON_AUTH,
    body: msg({ content: big }),
    status: 413,
    code: "payload_too_large"
  },
  {
    name: "2 MiB chunked body without content-length",
    method: "POST",
    path: "/v1/messages",
    headers: JSON_AUTH,
    status: 413,
    body: () =>
      new ReadableStream({
        start(controller) {
          const chunk = new TextEncoder().encode("x".repeat(64 * 1024))
          for (let i = 0; i < 32; i++) controller.enqueue(chunk)
          controller.close()
        }
      })
  },
  {
    name: "deeply nested JSON",
    method: "POST",
    path: "/v1/messages",
    headers: JSON_AUTH,
    body: nested(5000),
    status: 422
  },
  {
    name: "__proto__ key",
    method: "POST",
    path: "/v1/messages",
    headers: JSON_AUTH,
    body: "{\"__proto__\":{\"admin\":true},\"messages\":[{\"content\":\"x\"}]}",
    status: 422
  },

  // Message validation
  {
    name: "no messages",
    method: "POST",
    path: "/v1/messages",
    headers: JSON_AUTH,
    body: "{\"messages\":[]}",
    status: 422
  },
  {
    name: "1001 messages",
    method: "POST",
    path: "/v1/messages",
    headers: JSON_AUTH,
    body: JSON.stringify({ messages: Array.from({ length: 1001 }, () => ({ content: "m" })) }),
    status: 422
  },
  {
    name: "blank content",
    method: "POST",
    path: "/v1/messages",
    headers: JSON_AUTH,
    body: msg({ content: "   \n\t" }),
    status: 422
  },
  {
    name: "numeric content",
    method: "POST",
    path: "/v1/messages",
    headers: JSON_AUTH,
    body: msg({ content: 42 }),
    status: 422
  },
  {
    name: "missing content",
    method: "POST",
    path: "/v1/messages",
    headers: JSON_AUTH,
    body: msg({ author: "x" }),
    status: 422
  },
  {
    name: "content over 100k characters",
    method: "POST",
    path: "/v1/messages",
    headers: JSON_AUTH,
    body: msg({ content: "y".repeat(100_001) }),
    status: 422
  },
  {
    name: "unknown field",
    method: "POST",
    path: "/v1/messages",
    headers: JSON_AUTH,
    body: JSON.stringify({ messages: [{ content: "x" }], mesages: [] }),
    status: 422
  },
  {
    name: "importance out of range",
    method: "POST",
    path: "/v1/messages",
    headers: JSON_AUTH,
    body: msg({ content: "x", importance: 2 }),
    status: 422
  },
  {
    name: "unparseable sent_at",
    method: "POST",
    path: "/v1/messages",
    headers: JSON_AUTH,
    body: msg({ content: "x", sent_at: "last tuesday" }),
    status: 422
  },
  {
    name: "NUL character in content",
    method: "POST",
    path: "/v1/messages",
    headers: JSON_AUTH,
    body: msg({ content: "nul \u0000 byte" }),
    status: 422,
    code: "validation_failed"
  },
  // JSON.stringify writes a lone surrogate as the escape "\ud800", as a hostile client would.
  {
    name: "lone high surrogate in content",
    method: "POST",
    path: "/v1/messages",
    headers: JSON_AUTH,
    body: msg({ content: "lone \ud800 surrogate" }),
    status: 422,
    code: "validation_failed"
  },
  {
    name: "lone low surrogate in author",
    method: "POST",
    path: "/v1/messages",
    headers: JSON_AUTH,
    body: msg({ content: "x", author: "a\udc00" }),
    status: 422,
    code: "validation_failed"
  },
  {
    name: "pair in the wrong order",
    method: "POST",
    path: "/v1/messages",
    headers: JSON_AUTH,
    body: "{\"messages\":[{\"content\":\"\\ude80\\ud83d\"}]}",
    status: 422,
    code: "validation_failed"
  },
  {
    name: "lone surrogate in a key",
    method: "POST",
    path: "/v1/messages",
    headers: JSON_AUTH,
    body: "{\"messages\":[{\"content\":\"x\"}],\"\\ud800\":1}",
    status: 422,
    code: "validation_failed"
  },
  {
    name: "lone surrogate in an atom title",
    method: "POST",
    path: "/v1/extractions",
    headers: JSON_AUTH,
    body: JSON.stringify({ atoms: [{ type: "insight", title: "t\ud800", content: "c" }] }),
    status: 422,
    code: "validation_failed"
  },

  // Search parameters
  { name: "search without q", path: "/v1/search", status: 422 },
  { name: "blank q", path: "/v1/search?q=%20%20", status: 422 },
  { name: "q over 1000 characters", path: `/v1/search?q=${"q".repeat(1001)}`, status: 422 },
  { name: "negative limit", path: "/v1/search?q=x&limit=-1", status: 422 },
  { name: "zero limit", path: "/v1/search?q=x&limit=0", status: 422 },
  { name: "huge limit", path: "/v1/search?q=x&limit=101", status: 422 },
  { name: "NaN limit", path: "/v1/search?q=x&limit=NaN", status: 422 },
  { name: "infinite limit", path: "/v1/search?q=x&limit=1e999", status: 422 },
  { name: "fractional limit", path: "/v1/search?q=x&limit=2.5", status: 422 },
  { name: "20-digit limit", path: "/v1/search?q=x&limit=99999999999999999999", status: 422 },
  // Numbers are plain decimal digits; Number() would take all of these.
  { name: "hexadecimal limit", path: "/v1/search?q=x&limit=0x10", status: 422, code: "validation_failed" },
  { name: "limit with a plus sign", path: "/v1/search?q=x&limit=%2B5", status: 422 },
  { name: "limit with a raw plus (a space once decoded)", path: "/v1/search?q=x&limit=+5", status: 422 },
  { name: "limit with a leading space", path: "/v1/search?q=x&limit=%205", status: 422 },
  { name: "limit with a trailing space", path: "/v1/search?q=x&limit=5%20", status: 422 },
  { name: "limit written 5.0", path: "/v1/search?q=x&limit=5.0", status: 422 },
  { name: "limit in exponent form", path: "/v1/search?q=x&limit=1e1", status: 422 },
  { name: "limit 1e3", path: "/v1/search?q=x&limit=1e3", status: 422 },
  { name: "binary limit", path: "/v1/search?q=x&limit=0b101", status: 422 },
  { name: "empty limit", path: "/v1/search?q=x&limit=", status: 422 },
  { name: "hexadecimal topic_id", path: "/v1/search?q=x&topic_id=0x1", status: 422 },
  { name: "topic_id 1.0", path: "/v1/search?q=x&topic_id=1.0", status: 422 },
  { name: "hexadecimal min_score", path: "/v1/search?q=x&min_score=0x0", status: 422 },
  { name: "min_score in exponent form", path: "/v1/search?q=x&min_score=5e-1", status: 422 },
  { name: "min_score with a plus sign", path: "/v1/search?q=x&min_score=%2B0.5", status: 422 },
  { name: "unknown mode", path: "/v1/search?q=x&mode=semantic", status: 422 },
  { name: "unknown type", path: "/v1/search?q=x&types=invoices", status: 422, code: "invalid_request" },
  {
    name: "SQL in types",
    path: `/v1/search?q=x&types=${encodeURIComponent("atoms;DROP TABLE atoms;--")}`,
    status: 422
  },
  { name: "negative topic_id", path: "/v1/search?q=x&topic_id=-5", status: 422 },
  { name: "since not a date", path: "/v1/search?q=x&since=yesterday", status: 422 },
  { name: "min_score above 1", path: "/v1/search?q=x&min_score=2", status: 422 },
  { name: "NUL in q", path: "/v1/search?q=a%00b", status: 422 },

  // Auth
  {
    name: "write without token",
    method: "POST",
    path: "/v1/messages",
    headers: { "content-type": "application/json" },
    body: msg({ content: "x" }),
    status: 401,
    code: "unauthorized"
  },
  {
    name: "wrong token",
    method: "POST",
    path: "/v1/messages",
    headers: { "content-type": "application/json", authorization: "Bearer nope" },
    body: msg({ content: "x" }),
    status: 401
  },
  {
    name: "token of equal length but wrong",
    method: "POST",
    path: "/v1/extractions",
    headers: { "content-type": "application/json", authorization: `Bearer ${"h".repeat(TOKEN.length)}` },
    body: "{}",
    status: 401
  },
  {
    name: "token with a suffix",
    method: "POST",
    path: "/v1/extractions",
    headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}x` },
    body: "{}",
    status: 401
  },
  {
    name: "Basic scheme",
    method: "POST",
    path: "/v1/embeddings/backfill",
    headers: { authorization: `Basic ${Buffer.from(`u:${TOKEN}`).toString("base64")}` },
    status: 401
  },
  {
    name: "Bearer without token",
    method: "POST",
    path: "/v1/embeddings/retry-failed",
    headers: { authorization: "Bearer " },
    status: 401
  },
  {
    name: "auth checked before the body is parsed",
    method: "POST",
    path: "/v1/messages",
    headers: { "content-type": "application/json" },
    body: "{bad",
    status: 401
  },

  // Extraction references and shapes
  {
    name: "unknown message id",
    method: "POST",
    path: "/v1/extractions",
    headers: JSON_AUTH,
    body: JSON.stringify({ message_ids: [999999999] }),
    status: 422,
    code: "unknown_reference"
  },
  {
    name: "message id as string",
    method: "POST",
    path: "/v1/extractions",
    headers: JSON_AUTH,
    body: JSON.stringify({ message_ids: ["1"] }),
    status: 422,
    code: "validation_failed"
  },
  {
    name: "negative message id",
    method: "POST",
    path: "/v1/extractions",
    headers: JSON_AUTH,
    body: JSON.stringify({ message_ids: [-1] }),
    status: 422
  },
  {
    name: "atom type with spaces",
    method: "POST",
    path: "/v1/extractions",
    headers: JSON_AUTH,
    body: JSON.stringify({ atoms: [{ type: "Bad Type!", title: "t", content: "c" }] }),
    status: 422
  },
  {
    name: "unknown atom id",
    method: "POST",
    path: "/v1/extractions",
    headers: JSON_AUTH,
    body: JSON.stringify({ atoms: [{ id: 999999999, type: "insight", title: "t", content: "c" }] }),
    status: 422,
    code: "unknown_reference"
  },
  {
    name: "link to unknown atom",
    method: "POST",
    path: "/v1/extractions",
    headers: JSON_AUTH,
    body: JSON.stringify({
      atoms: [{ type: "insight", title: "t", content: "c", links: [{ to: "no such atom anywhere", relation: "x" }] }]
    }),
    status: 422,
    code: "unknown_reference"
  },
  {
    name: "confidence above 1",
    method: "POST",
    path: "/v1/extractions",
    headers: JSON_AUTH,
    body: JSON.stringify({ atoms: [{ type: "insight", title: "t", content: "c", confidence: 7 }] }),
    status: 422
  },

  // Backfill and retry bodies, ids
  {
    name: "backfill unknown entity type",
    method: "POST",
    path: "/v1/embeddings/backfill",
    headers: JSON_AUTH,
    body: JSON.stringify({ dry_run: true, entity_types: ["invoices"] }),
    status: 422,
    code: "invalid_request"
  },
  {
    name: "backfill batch_size 0",
    method: "POST",
    path: "/v1/embeddings/backfill",
    headers: JSON_AUTH,
    body: JSON.stringify({ batch_size: 0 }),
    status: 422
  },
  {
    name: "backfill concurrency 1000",
    method: "POST",
    path: "/v1/embeddings/backfill",
    headers: JSON_AUTH,
    body: JSON.stringify({ concurrency: 1000 }),
    status: 422
  },
  {
    name: "backfill negative limit",
    method: "POST",
    path: "/v1/embeddings/backfill",
    headers: JSON_AUTH,
    body: JSON.stringify({ limit: -1 }),
    status: 422
  },
  {
    name: "backfill dry_run as string",
    method: "POST",
    path: "/v1/embeddings/backfill",
    headers: JSON_AUTH,
    body: JSON.stringify({ dry_run: "yes" }),
    status: 422
  },
  {
    name: "retry-failed types as string",
    method: "POST",
    path: "/v1/embeddings/retry-failed",
    headers: JSON_AUTH,
    body: JSON.stringify({ entity_types: "atoms" }),
    status: 422
  },
  { name: "unknown backfill job", path: "/v1/embeddings/backfill/bf_doesnotexist", status: 404, code: "not_found" },
  { name: "backfill id with traversal", path: "/v1/embeddings/backfill/..%2F..%2Fetc%2Fpasswd", status: 404 },
  { name: "backfill id of 300 characters", path: `/v1/embeddings/backfill/${"a".repeat(300)}`, status: 404 },
  { name: "backfill id with SQL", path: `/v1/embeddings/backfill/${encodeURIComponent("' OR '1'='1")}`, status: 404 },

  // Routes and methods
  { name: "unknown route", path: "/v2/search?q=x", status: 404, code: "not_found" },
  { name: "unknown static file", path: "/static/..%2Fpackage.json", status: 404 },
  {
    name: "DELETE messages",
    method: "DELETE",
    path: "/v1/messages",
    headers: AUTH,
    status: 405,
    code: "method_not_allowed"
  },
  { name: "PUT search", method: "PUT", path: "/v1/search?q=x", status: 405 },
  { name: "GET messages", path: "/v1/messages", status: 405 },
  { name: "PATCH status", method: "PATCH", path: "/v1/embeddings/status", headers: JSON_AUTH, body: "{}", status: 405 }
]

describe("hostile requests", () => {
  let server: TestServer
  beforeAll(async () => {
    server = await startTestServer({ workers: true, token: TOKEN })
  })
  afterAll(async () => {
    await server?.stop()
  })

  it("has at least 40 cases answered with 4xx", () => {
    expect(cases.filter((c) => c.status >= 400 && c.status < 500).length).toBeGreaterThanOrEqual(40)
  })

  for (const c of cases) {
    it(`${c.name}: ${c.status}`, async () => {
      const body = typeof c.body === "function" ? c.body() : c.body
      const res = await fetch(server.url + c.path, {
        method: c.method ?? "GET",
        headers: c.headers,
        body,
        ...(body instanceof ReadableStream ? { duplex: "half" } : {})
      } as RequestInit)
      const text = await res.text()
      expect(res.status, text.slice(0, 500)).toBe(c.status)
      expect(res.headers.get("content-type")).toMatch(/^application\/json/)
      const parsed = JSON.parse(text)
      expect(Object.keys(parsed)).toEqual(["error"])
      expect(parsed.error).toMatchObject({
        code: expect.any(String),
        message: expect.any(String),
        request_id: res.headers.get("x-request-id")
      })
      expect(parsed.error).toHaveProperty("details")
      if (c.code) expect(parsed.error.code).toBe(c.code)
      // Nothing internal leaks: no stack frames, no SQL.
      expect(text).not.toMatch(/\bat \w+ \(|node_modules|SELECT |INSERT |\.ts:\d+/)
      if (c.status === 405) expect(res.headers.get("allow")).toBeTruthy()
      if (c.status === 401) expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/)
    })
  }

  it("stores SQL-like and unicode text as data and finds it", async () => {
    const strings = [
      "'; DROP TABLE messages; --",
      "Robert'); DELETE FROM atoms WHERE ('1'='1",
      "Ünïcödé 数据库迁移 失败 🚀 — مرحبا",
      "zero-width \u200b joiner and a pair written as escapes \ud83d\ude80"
    ]
    const res = await fetch(`${server.url}/v1/messages`, {
      method: "POST",
      headers: JSON_AUTH,
      body: JSON.stringify({ messages: strings.map((content) => ({ content })) })
    })
    expect(res.status).toBe(201)
    for (const q of ["' OR 1=1; --", "数据库迁移", "🚀", "\" OR -x", "%_\\"]) {
      const s = await fetch(`${server.url}/v1/search?q=${encodeURIComponent(q)}`)
      expect(s.status, q).toBe(200)
    }
    const status = (await (await fetch(`${server.url}/v1/embeddings/status`)).json()) as any
    expect(status.sources.messages.total).toBeGreaterThanOrEqual(4)
  })

  it("refusals of text and numbers name the field", async () => {
    const refused = async (res: Response) => {
      expect(res.status).toBe(422)
      return ((await res.json()) as any).error
    }
    const post = (path: string, body: string) => fetch(server.url + path, { method: "POST", headers: JSON_AUTH, body })
    const surrogate = await refused(
      await post("/v1/messages", JSON.stringify({ messages: [{ content: "ok" }, { content: "x", author: "a\udc00" }] }))
    )
    expect(surrogate.message).toBe(
      "messages[1].author contains a lone UTF-16 surrogate (half of a pair, such as \\ud800), which is not Unicode text"
    )
    expect(surrogate.details).toEqual([{
      path: "messages[1].author",
      message: "contains a lone UTF-16 surrogate (half of a pair, such as \\ud800), which is not Unicode text"
    }])
    const nul = await refused(
      await post("/v1/extractions", JSON.stringify({ topics: [{ name: "t", description: "nul\u0000" }] }))
    )
    expect(nul.message).toBe(
      "topics[0].description contains a NUL character (\\u0000), which PostgreSQL text cannot hold"
    )
    const key = await refused(await post("/v1/messages", "{\"messages\":[{\"content\":\"x\"}],\"\\ud800\":1}"))
    expect(key.details[0].path).toBe("a key in the body")
    for (
      const [param, field] of [["limit=0x10", "limit"], ["topic_id=%2B5", "topic_id"], ["min_score=1e-1", "min_score"]]
    ) {
      const error = await refused(await fetch(`${server.url}/v1/search?q=x&${param}`))
      expect(error.details[0].path, param).toBe(field)
      expect(error.message, param).toMatch(new RegExp(`^${field} must be a`))
    }
  })

  it("a body that does not match the schema answers a flat list of problems, the first in the message", async () => {
    const res = await fetch(server.url + "/v1/messages", {
      method: "POST",
      headers: JSON_AUTH,
      body: JSON.stringify({ messages: [{ content: "fine" }, { content: 5, importance: 3 }] })
    })
    expect(res.status).toBe(422)
    const error = ((await res.json()) as any).error
    expect(error.code).toBe("validation_failed")
    expect(error.details.map((d: { path: string }) => d.path)).toEqual([
      "messages[1].content",
      "messages[1].importance"
    ])
    expect(error.message).toMatch(/^messages\[1\]\.content: Expected string, actual 5$/)
    for (const d of error.details) expect(d.message).not.toMatch(/\n|Encoded side/)
  })

  it("plain decimal numbers and valid pairs written as escapes are accepted", async () => {
    for (
      const query of [
        "limit=5",
        "limit=100",
        "limit=007",
        "topic_id=1",
        "min_score=0.5",
        "min_score=-0.25",
        "min_score=.5",
        "min_score=1"
      ]
    ) {
      const res = await fetch(`${server.url}/v1/search?q=x&${query}`)
      expect(res.status, query).toBe(200)
    }
    const res = await fetch(`${server.url}/v1/messages`, {
      method: "POST",
      headers: JSON_AUTH,
      body: "{\"messages\":[{\"content\":\"\\ud83d\\ude80 launch\"}]}"
    })
    expect(res.status).toBe(201)
  })

  it("keeps serving afterwards", async () => {
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200)
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200)
    const ok = await fetch(`${server.url}/v1/messages`, {
      method: "POST",
      headers: JSON_AUTH,
      body: msg({ content: "still here after the storm" })
    })
    expect(ok.status).toBe(201)
    expect((await fetch(`${server.url}/v1/search?q=still+here`)).status).toBe(200)
  })
})

describe("database failures map by their cause chain", () => {
  const sqlError = (cause: unknown) => new SqlError({ cause, message: "Failed to execute statement" })
  it("a refused or dropped connection, however deep, is 503 database_unavailable; a SQLSTATE decides otherwise", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" })
    expect(mapError(sqlError(refused)).error).toMatchObject({ status: 503, code: "database_unavailable" })
    expect(mapError(sqlError(new Error("wrapper", { cause: refused }))).error.status).toBe(503)
    expect(mapError(sqlError(new Error("Connection terminated unexpectedly"))).error.status).toBe(503)
    const duplicate = Object.assign(new Error("duplicate key value"), { code: "23505" })
    expect(mapError(sqlError(new Error("wrapper", { cause: duplicate }))).error).toMatchObject({
      status: 409,
      code: "conflict"
    })
    const nul = Object.assign(new Error("invalid byte sequence"), { code: "22021" })
    expect(mapError(sqlError(nul)).error).toMatchObject({
      status: 422,
      code: "invalid_value",
      details: { sqlstate: "22021" }
    })
    // A syntax error is our bug, not the user's or the database's: 500, logged.
    const bug = mapError(sqlError(Object.assign(new Error("syntax error"), { code: "42601" })))
    expect(bug.error).toMatchObject({ status: 500, code: "internal_error" })
    expect(bug.log?.level).toBe("error")
  })
})
