import { Option, Redacted } from "effect"
import pg from "pg"
import { type RunningServer, startServer } from "../../packages/api/src/Server.js"
import type { ServerConfigShape } from "../../packages/api/src/ServerConfig.js"
import type { AutoEmbedConfigShape } from "../../packages/core/src/config/AutoEmbedConfig.js"
import { watchContract } from "./Contract.js"
import { serverUrl } from "./TestDatabase.js"

/** A throw-away database on the DATABASE_URL server, so test files never share tables. */
export const scratchDatabase = async (): Promise<{ url: string; drop: () => Promise<void> }> => {
  const admin = serverUrl()!
  const name = `autoembed_api_${process.pid}_${Math.random().toString(36).slice(2, 8)}`
  const client = new pg.Client({ connectionString: admin })
  await client.connect()
  await client.query(`CREATE DATABASE ${name}`)
  await client.end()
  const u = new URL(admin)
  u.pathname = `/${name}`
  return {
    url: u.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: admin })
      await c.connect()
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await c.end()
    }
  }
}

export interface TestServer extends RunningServer {
  readonly stop: () => Promise<void>
}

/**
 * The real server (Hono on a random port, the full AutoEmbed layer) for the current tier: in-memory
 * PGlite, or a scratch database on DATABASE_URL's server. Local provider, no sample data.
 */
export const startTestServer = async (
  options: {
    workers?: boolean
    token?: string
    protectReads?: boolean
    config?: Partial<AutoEmbedConfigShape>
    server?: Partial<ServerConfigShape>
  } = {}
): Promise<TestServer> => {
  const scratch = serverUrl() ? await scratchDatabase() : undefined
  const server = await startServer({
    workers: options.workers ?? true,
    sampleData: false,
    server: {
      host: "127.0.0.1",
      port: 0,
      apiToken: options.token ? Option.some(Redacted.make(options.token)) : Option.none(),
      protectReads: options.protectReads ?? false,
      ...options.server
    },
    config: {
      provider: "local",
      dimensions: 256,
      dataDir: "memory://",
      databaseUrl: scratch ? Option.some(Redacted.make(scratch.url)) : Option.none(),
      sweepIntervalMs: 500,
      batchWindowMs: 5,
      logLevel: process.env.AUTOEMBED_TEST_LOG_LEVEL ?? "warning",
      ...options.config
    }
  })
  // Every answer this server gives a test is checked against its /openapi.json (test/support/Contract.ts).
  const contract = await watchContract(server.url)
  return {
    ...server,
    stop: async () => {
      const { violations } = await contract.finish()
      await server.close()
      await scratch?.drop()
      if (violations.length > 0) {
        throw new Error(`${violations.length} answers broke the contract:\n${violations.slice(0, 20).join("\n")}`)
      }
    }
  }
}

/** Polls `check` until it returns a value or the deadline passes. */
export const eventually = async <A>(
  check: () => Promise<A | undefined>,
  timeoutMs = 20_000,
  everyMs = 100
): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`)
    await new Promise((r) => setTimeout(r, everyMs))
  }
}

export const json = (body: unknown, token?: string): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
  body: JSON.stringify(body)
})
