import { Effect, Layer, Option, Redacted } from "effect"
import pg from "pg"
import { AutoEmbedConfig, type AutoEmbedConfigShape } from "../../packages/core/src/config/AutoEmbedConfig.js"

/**
 * The database tier for a test file: embedded PGlite in memory by default; when DATABASE_URL is set,
 * a fresh database on that server (created here, dropped after), so test files never share tables.
 */
export const serverUrl = (): string | undefined => {
  const url = process.env.DATABASE_URL
  return url && url.trim() !== "" ? url : undefined
}

export const tier = (): "postgres" | "pglite" => (serverUrl() ? "postgres" : "pglite")

const withDatabase = (url: string, database: string) => {
  const u = new URL(url)
  u.pathname = `/${database}`
  return u.toString()
}

/** Creates a throw-away database on the server and returns its URL. */
export const createScratchDatabase = Effect.acquireRelease(
  Effect.promise(async () => {
    const admin = serverUrl()!
    const name = `autoembed_test_${process.pid}_${Math.random().toString(36).slice(2, 8)}`
    const client = new pg.Client({ connectionString: admin })
    await client.connect()
    await client.query(`CREATE DATABASE ${name}`)
    await client.end()
    return { name, url: withDatabase(admin, name) }
  }),
  ({ name }) =>
    Effect.promise(async () => {
      const client = new pg.Client({ connectionString: serverUrl()! })
      await client.connect()
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await client.end()
    })
)

/** An AutoEmbedConfig for tests on the current tier (Local provider, small vectors unless overridden). */
export const testConfig = (overrides: Partial<AutoEmbedConfigShape> = {}) =>
  Layer.unwrapScoped(
    Effect.gen(function*() {
      if (!serverUrl() || overrides.databaseUrl !== undefined) {
        return AutoEmbedConfig.make({ dataDir: "memory://", provider: "local", dimensions: 256, ...overrides })
      }
      const { url } = yield* createScratchDatabase
      return AutoEmbedConfig.make({
        databaseUrl: Option.some(Redacted.make(url)),
        provider: "local",
        dimensions: 256,
        ...overrides
      })
    })
  )
