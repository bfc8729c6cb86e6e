import { PGlite } from "@electric-sql/pglite"
import { vector } from "@electric-sql/pglite-pgvector"
import pg from "pg"

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
