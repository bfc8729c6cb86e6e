import { PGlite } from "@electric-sql/pglite"
import { vector } from "@electric-sql/pglite-pgvector"
import { Option, Redacted } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import pg from "pg"
import type { AutoEmbedConfigShape } from "../../packages/core/src/config/AutoEmbedConfig.js"
import { scratchDatabase } from "./ApiServer.js"
import { serverUrl } from "./TestDatabase.js"

/**
 * Where a test that runs the CLI (or the server) as its own process keeps its database: a scratch
 * database on the server tier (`url`), else a PGlite data directory on disk (`dataDir`).
 */
export interface TierDatabase {
  readonly url: string | undefined
  readonly dataDir: string
}

/** The environment that points an autoembed process at the tier's database. */
export const tierEnv = ({ dataDir, url }: TierDatabase): Record<string, string> =>
  url ? { DATABASE_URL: url } : { DATABASE_URL: "", AUTOEMBED_DATA_DIR: dataDir }

/**
 * Plain SQL on the tier's database, as another service would send it: a pg client on the server,
 * PGlite's own client on the embedded tier (PGlite admits one process at a time: call it between
 * runs of autoembed's processes). Several statements may be sent at once; the last one's rows
 * come back (on the server, the rows of a single statement).
 */
export const tierQuery = async <Row = Record<string, unknown>>(
  { dataDir, url }: TierDatabase,
  text: string
): Promise<Array<Row>> => {
  if (url) {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    try {
      return (await client.query(text)).rows as Array<Row>
    } finally {
      await client.end()
    }
  }
  const db = await PGlite.create({ dataDir, extensions: { vector } })
  try {
    return (await db.exec(text)).at(-1)?.rows as Array<Row>
  } finally {
    await db.close()
  }
}

/**
 * A tier database for a test that starts autoembed (in process, or as processes) several times
 * over the same data: a scratch database on the server, a PGlite directory on disk otherwise, with
 * the configuration that points autoembed at it and a `drop` for afterAll.
 */
export const openTierDatabase = async (): Promise<
  TierDatabase & { readonly config: Partial<AutoEmbedConfigShape>; readonly drop: () => Promise<void> }
> => {
  if (serverUrl()) {
    const scratch = await scratchDatabase()
    return {
      url: scratch.url,
      dataDir: "",
      config: { databaseUrl: Option.some(Redacted.make(scratch.url)) },
      drop: scratch.drop
    }
  }
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "autoembed-tier-"))
  return {
    url: undefined,
    dataDir: dir,
    config: { dataDir: dir },
    drop: async () => Fs.rmSync(dir, { recursive: true, force: true })
  }
}
