import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type FakeProviderServer, startFakeProviderServer } from "./fakes/FakeProviderServer.js"
import { scratchDatabase } from "./support/ApiServer.js"
import { startCli } from "./support/Processes.js"
import { serverUrl, tier } from "./support/TestDatabase.js"
import { tierEnv, tierQuery } from "./support/Tier.js"

/**
 * Every mistake of a configuration attached to an existing database stops `pnpm cli migrate` with
 * one line that names the object and the fix, a non-zero exit, and a database exactly as it was.
 */

const SCHEMA = `
  CREATE EXTENSION IF NOT EXISTS vector;
  CREATE TABLE messages (id bigserial PRIMARY KEY, chat_id bigint, content text, embedding vector(1024),
    small vector(768), loose vector, plain real[]);
  CREATE TABLE pairs (a int, b int, body text, PRIMARY KEY (a, b));
  INSERT INTO messages (chat_id, content) VALUES (1, 'hello'), (2, 'world');
`

/** Everything a failed install could have left behind. */
const SNAPSHOT = `
  SELECT 'schema ' || nspname AS o FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
  UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal
  UNION ALL SELECT 'relation ' || n.nspname || '.' || c.relname
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  UNION ALL SELECT 'column ' || table_name || '.' || column_name FROM information_schema.columns
    WHERE table_schema = 'public'
  UNION ALL SELECT 'function ' || proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  ORDER BY 1`

describe(`configuration mistakes on an existing database (${tier()})`, () => {
  const work = Fs.mkdtempSync(Path.join(Os.tmpdir(), "autoembed-attach-errors-"))
  const dataDir = Path.join(work, "pglite")
  let fake: FakeProviderServer
  let database: { url: string; drop: () => Promise<void> } | undefined

  const query = <Row = Record<string, unknown>>(text: string, url = database?.url) =>
    tierQuery<Row>({ url, dataDir }, text)

  /** `pnpm cli migrate` with this configuration file; returns its exit code and stderr lines. */
  const migrate = async (
    config: unknown,
    options: { ext?: string; url?: string; env?: Record<string, string> } = {}
  ) => {
    const file = Path.join(work, `autoembed.config.${options.ext ?? "json"}`)
    Fs.writeFileSync(file, typeof config === "string" ? config : JSON.stringify(config))
    const url = options.url ?? database?.url
    const run = startCli(["migrate"], {
      ...tierEnv({ url, dataDir }),
      AUTOEMBED_CONFIG: file,
      EMBEDDING_PROVIDER: "ollama",
      OLLAMA_HOST: fake.ollamaHost,
      EMBEDDING_MODEL: "mxbai-embed-large",
      EMBEDDING_DIMENSIONS: "1024",
      ...options.env
    })
    const code = await run.exited
    return { code, lines: run.output.stderr.trim().split("\n").filter((l) => l !== ""), file }
  }

  beforeAll(async () => {
    fake = await startFakeProviderServer({ modelDimensions: { "mxbai-embed-large": 1024 } })
    database = serverUrl() ? await scratchDatabase() : undefined
    await query(SCHEMA)
  }, 120_000)

  afterAll(async () => {
    await fake?.close()
    await database?.drop()
    Fs.rmSync(work, { recursive: true, force: true })
  })

  const cases: ReadonlyArray<{ what: string; config: unknown; ext?: string; expected: (file: string) => string }> = [
    {
      what: "a missing table",
      config: { sources: { chat: { table: "public.mesages", text: "content" } } },
      expected: (f) =>
        `Source "chat" (sources.chat.table in ${f}): table public.mesages does not exist; create it or fix the name`
    },
    {
      what: "a missing column",
      config: { sources: { chat: { table: "messages", text: "{contnet}" } } },
      expected: (f) =>
        `Source "chat" (sources.chat.text in ${f}): column public.messages.contnet does not exist; ` +
        "columns are id, chat_id, content, embedding, small, loose, plain"
    },
    {
      what: "a vector column without dimensions",
      config: { sources: { chat: { table: "messages", text: "content", vector: "loose" } } },
      expected: (f) =>
        `Source "chat" (sources.chat.vector in ${f}): public.messages.loose is vector; ` +
        "it must be vector(n) with a fixed number of dimensions"
    },
    {
      what: "a column that is not a vector",
      config: { sources: { chat: { table: "messages", text: "content", vector: "plain" } } },
      expected: (f) =>
        `Source "chat" (sources.chat.vector in ${f}): public.messages.plain is real[]; ` +
        "it must be vector(n) with a fixed number of dimensions"
    },
    {
      what: "a dimension that differs from the model's",
      config: { sources: { chat: { table: "messages", text: "content", vector: "small" } } },
      expected: (f) =>
        `Source "chat" (sources.chat.vector in ${f}): public.messages.small is vector(768) ` +
        "but EMBEDDING_DIMENSIONS is 1024; set EMBEDDING_DIMENSIONS=768 (and a 768-d model)"
    },
    {
      what: "a table without a single-column key",
      config: { sources: { pairs: { table: "pairs", text: "body" } } },
      expected: (f) =>
        `Source "pairs" (sources.pairs.id in ${f}): public.pairs has a primary key of several columns; ` +
        "set \"id\" to a unique column"
    },
    {
      what: "a misspelt key",
      config: { sources: { chat: { table: "messages", text: "content", vectr: "embedding" } } },
      expected: (f) => `${f}: sources.chat.vectr: is unexpected`
    },
    {
      what: "a file that is not valid YAML",
      config: "sources:\n  chat: [unclosed\n",
      ext: "yaml",
      expected: (f) => `${f}: not valid YAML:`
    }
  ]

  for (const c of cases) {
    it(`${c.what}: one line naming it and the fix, exit 2, database unchanged`, async () => {
      const before = await query(SNAPSHOT)
      const result = await migrate(c.config, { ext: c.ext })
      expect(result.lines).toHaveLength(1)
      expect(result.lines[0].startsWith(c.expected(result.file)), result.lines[0]).toBe(true)
      expect(result.code).toBe(2)
      expect(await query(SNAPSHOT)).toEqual(before)
    }, 60_000)
  }

  it("several mistakes give one line each", async () => {
    const result = await migrate({
      sources: { a: { table: "nope", text: "x" }, b: { table: "messages", text: "content", vector: "small" } }
    })
    expect(result.lines).toHaveLength(2)
    expect(result.code).toBe(2)
  }, 60_000)

  describe.skipIf(serverUrl() === undefined)("rights of the database role", () => {
    const role = `ae_limited_${process.pid}`
    let limitedUrl = ""
    let bare: { url: string; drop: () => Promise<void> } | undefined

    beforeAll(async () => {
      await query(
        `CREATE ROLE ${role} LOGIN NOSUPERUSER; GRANT SELECT, UPDATE ON messages TO ${role}; GRANT CREATE ON DATABASE ${
          new URL(database!.url).pathname.slice(1)
        } TO ${role}`
      )
      const u = new URL(database!.url)
      u.username = role
      limitedUrl = u.toString()
      bare = await scratchDatabase()
    }, 60_000)

    afterAll(async () => {
      await bare?.drop()
      await query(`DROP OWNED BY ${role}; DROP ROLE IF EXISTS ${role}`).catch(() => undefined)
    })

    it("no right to create triggers on the table", async () => {
      const before = await query(SNAPSHOT)
      const result = await migrate({ sources: { chat: { table: "messages", text: "content", index: false } } }, {
        url: limitedUrl
      })
      expect(result.lines).toHaveLength(1)
      expect(result.lines[0]).toContain(
        "the database role may not create triggers on public.messages; " +
          "GRANT TRIGGER ON public.messages to it (or run as its owner)"
      )
      expect(result.code).toBe(2)
      expect(await query(SNAPSHOT)).toEqual(before)
    }, 60_000)

    it("pgvector not enabled and no right to enable it", async () => {
      const u = new URL(bare!.url)
      u.username = role
      await query(`GRANT CREATE ON DATABASE ${u.pathname.slice(1)} TO ${role}`, bare!.url)
      const before = await query(SNAPSHOT, bare!.url)
      const result = await migrate({ sources: {} }, { url: u.toString(), env: { AUTOEMBED_BUILTIN: "false" } })
      expect(result.lines).toEqual([
        `pgvector is not enabled in database ${
          u.pathname.slice(1)
        } and role ${role} may not enable it: run CREATE EXTENSION vector; as a superuser in ${
          u.pathname.slice(1)
        }, then start again.`
      ])
      expect(result.code).toBe(2)
      expect(await query(SNAPSHOT, bare!.url)).toEqual(before)
    }, 60_000)
  })
})
