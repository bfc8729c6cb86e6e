import { ConfigProvider, Effect, Either } from "effect"
import * as Net from "node:net"
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest"
import { readServerConfig } from "../packages/api/src/ServerConfig.js"
import { readConfig } from "../packages/core/src/config/AutoEmbedConfig.js"
import { json, startTestServer, type TestServer } from "./support/ApiServer.js"

const HEADERS_MS = 500
const REQUEST_MS = 1000
const IDLE_MS = 500
/** Node checks the headers and request timeouts every 500 ms; the rest is scheduling slack on a busy machine. */
const SLACK_MS = 1200

interface RawClient {
  readonly socket: Net.Socket
  /** Everything the server sent. */
  readonly received: () => string
  /** Milliseconds from connecting until the server closed the connection. */
  readonly closed: Promise<number>
}

/** A client that writes raw bytes, as slow or broken clients do. */
const rawClient = (url: string): RawClient => {
  const { hostname, port } = new URL(url)
  const started = Date.now()
  const socket = Net.connect(Number(port), hostname)
  let received = ""
  socket.on("data", (d) => (received += String(d)))
  socket.on("error", () => undefined)
  const closed = new Promise<number>((resolve) => socket.once("close", () => resolve(Date.now() - started)))
  return { socket, received: () => received, closed }
}

/** Writes one chunk every `everyMs` while the connection is open. */
const trickle = (socket: Net.Socket, chunk: string, everyMs: number) => {
  const timer = setInterval(() => {
    if (!socket.destroyed) socket.write(chunk)
  }, everyMs)
  socket.once("close", () => clearInterval(timer))
}

const postHeaders = (length: number) =>
  `POST /v1/messages HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`

describe("HTTP timeouts against slow clients", () => {
  let server: TestServer
  beforeAll(async () => {
    server = await startTestServer({
      workers: false,
      server: { httpHeadersTimeoutMs: HEADERS_MS, httpRequestTimeoutMs: REQUEST_MS, httpIdleTimeoutMs: IDLE_MS }
    })
  })
  afterAll(async () => {
    await server?.stop()
  })

  it("a body trickled a byte every 200 ms is answered 408 and closed within the request timeout", async () => {
    const client = rawClient(server.url)
    client.socket.write(postHeaders(10_000) + "{")
    trickle(client.socket, " ", 200)
    const ms = await client.closed
    expect(ms).toBeLessThan(REQUEST_MS + SLACK_MS)
    expect(client.received()).toMatch(/^HTTP\/1\.1 408 /)
  })

  it("headers trickled a line at a time (slowloris) are answered 408 within the headers timeout", async () => {
    const client = rawClient(server.url)
    client.socket.write("GET /healthz HTTP/1.1\r\nHost: test\r\n")
    trickle(client.socket, "X-Slow: yes\r\n", 100)
    const ms = await client.closed
    expect(ms).toBeLessThan(HEADERS_MS + SLACK_MS)
    expect(client.received()).toMatch(/^HTTP\/1\.1 408 /)
  })

  it("an idle keep-alive connection is closed after the idle timeout", async () => {
    const client = rawClient(server.url)
    client.socket.write("GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: keep-alive\r\n\r\n")
    const answeredAt = await new Promise<number>((resolve) => {
      const started = Date.now()
      client.socket.once("data", () => resolve(Date.now() - started))
    })
    const ms = await client.closed
    expect(client.received()).toMatch(/^HTTP\/1\.1 200 /)
    expect(ms - answeredAt).toBeGreaterThanOrEqual(IDLE_MS - 100)
    expect(ms - answeredAt).toBeLessThan(IDLE_MS + SLACK_MS)
  })

  it(
    "200 half-sent bodies are all let go within the request timeout, quietly, " +
      "and the server keeps answering",
    async () => {
      const stderr = vi.spyOn(process.stderr, "write")
      const clients = Array.from({ length: 200 }, () => {
        const client = rawClient(server.url)
        client.socket.write(postHeaders(1000) + "{\"messages\": [")
        return client
      })
      const times = await Promise.all(clients.map((c) => c.closed))
      expect(Math.max(...times)).toBeLessThan(REQUEST_MS + SLACK_MS * 2)
      // A client's timeout is not a server error: no error line per abandoned request.
      const errors = stderr.mock.calls.map(([line]) => String(line)).filter((line) =>
        line.includes("\"level\":\"error\"")
      )
      stderr.mockRestore()
      expect(errors).toEqual([])
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200)
    }
  )

  it("a request sent at once is not affected", async () => {
    const res = await fetch(
      `${server.url}/v1/messages`,
      json({ messages: [{ content: "a prompt client sends its body at once" }] })
    )
    expect(res.status).toBe(201)
  })
})

describe("settings of the HTTP edge and the shutdown", () => {
  const read = (settings: Record<string, string>) =>
    Effect.runPromise(
      Effect.either(Effect.withConfigProvider(
        // The drain bound is core's setting, the HTTP edge the server's (ServerConfig).
        Effect.map(Effect.all([readConfig, readServerConfig()]), ([core, server]) => ({ ...core, ...server })),
        ConfigProvider.fromMap(new Map(Object.entries(settings)))
      ))
    )

  it("default to 10 s headers, 30 s request, 5 s idle, 15 s drain", async () => {
    const config = await read({})
    expect(Either.getOrThrow(config)).toMatchObject({
      httpHeadersTimeoutMs: 10_000,
      httpRequestTimeoutMs: 30_000,
      httpIdleTimeoutMs: 5_000,
      drainTimeoutMs: 15_000
    })
  })

  it("a value out of bounds, or headers allowed longer than the whole request, names the variable", async () => {
    const cases: Array<[Record<string, string>, string]> = [
      [{ AUTOEMBED_DRAIN_TIMEOUT_MS: "0" }, "AUTOEMBED_DRAIN_TIMEOUT_MS must be a whole number from 1 to 600000"],
      [{ AUTOEMBED_DRAIN_TIMEOUT_MS: "ten" }, "AUTOEMBED_DRAIN_TIMEOUT_MS"],
      [
        { AUTOEMBED_HTTP_IDLE_TIMEOUT_MS: "-1" },
        "AUTOEMBED_HTTP_IDLE_TIMEOUT_MS must be a whole number from 1 to 600000"
      ],
      [
        { AUTOEMBED_HTTP_REQUEST_TIMEOUT_MS: "3600001" },
        "AUTOEMBED_HTTP_REQUEST_TIMEOUT_MS must be a whole number from 1 to 3600000"
      ],
      [
        { AUTOEMBED_HTTP_HEADERS_TIMEOUT_MS: "20000", AUTOEMBED_HTTP_REQUEST_TIMEOUT_MS: "10000" },
        "AUTOEMBED_HTTP_HEADERS_TIMEOUT_MS must not be larger than AUTOEMBED_HTTP_REQUEST_TIMEOUT_MS"
      ]
    ]
    for (const [settings, message] of cases) {
      const result = await read(settings)
      expect(Either.isLeft(result), JSON.stringify(settings)).toBe(true)
      if (Either.isLeft(result)) expect(result.left.message).toContain(message)
    }
  })
})
