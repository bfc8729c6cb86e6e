import { Option, Redacted } from "effect"
import { spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { openApiDocument } from "../packages/api/src/contract/index.js"
import { startServer } from "../packages/api/src/Server.js"
import { type FakeProviderServer, startFakeProviderServer } from "./fakes/FakeProviderServer.js"
import { scratchDatabase } from "./support/ApiServer.js"
import { validateInDocument } from "./support/Contract.js"
import { startCli, stop, waitFor } from "./support/Processes.js"
import { serverUrl, tier } from "./support/TestDatabase.js"
import { tierEnv, tierQuery } from "./support/Tier.js"

/**
 * autoembed attached to a database it did not create, as a user of the original Python backend
 * would: its tables made by plain SQL (their own names, a bigserial and a serial key, embedding
 * vector(1024) columns with NULLs, a uuid-keyed table in another schema), a configuration file,
 * and the CLI. On the server tier another process writes rows with psql while a worker runs.
 */

const DIMS = 1024
const PROBE = "autoembed probe"
const PYTHON_SCHEMA = `
  CREATE EXTENSION IF NOT EXISTS vector;
  CREATE TABLE topics (id serial PRIMARY KEY, name text NOT NULL UNIQUE);
  CREATE TABLE messages (
    id bigserial PRIMARY KEY,
    telegram_message_id bigint UNIQUE,
    chat_id bigint NOT NULL,
    sender text,
    content text NOT NULL,
    score real,
    created_at timestamptz NOT NULL DEFAULT now(),
    embedding vector(1024)
  );
  CREATE TABLE atoms (
    id serial PRIMARY KEY,
    type text NOT NULL,
    title text NOT NULL,
    content text NOT NULL,
    topic_id integer REFERENCES topics(id),
    embedding vector(1024)
  );
  CREATE SCHEMA kb;
  CREATE TABLE kb.notes (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), heading text NOT NULL, body text, tags text);
  INSERT INTO topics (name) VALUES ('deploys'), ('billing');
  -- 237 + 125 rows the old backend never embedded, and some it did (their vectors stay as they are).
  INSERT INTO messages (telegram_message_id, chat_id, sender, content)
    SELECT 1000 + g, 42 + (g % 3), 'user' || (g % 7),
      'message ' || g || ' about ' || (CASE WHEN g % 2 = 0 THEN 'the staging deploy' ELSE 'an invoice' END)
    FROM generate_series(1, 237) g;
  INSERT INTO messages (telegram_message_id, chat_id, content, embedding)
    SELECT 5000 + g, 42, 'already embedded ' || g, array_fill(0.01::float4, ARRAY[1024])::vector
    FROM generate_series(1, 20) g;
  INSERT INTO atoms (type, title, content, topic_id)
    SELECT 'insight', 'Atom ' || g, 'what we learned about rollbacks, number ' || g, 1 + (g % 2)
    FROM generate_series(1, 125) g;
  INSERT INTO atoms (type, title, content, topic_id, embedding)
    SELECT 'decision', 'Old atom ' || g, 'decided long ago ' || g, 1, array_fill(0.02::float4, ARRAY[1024])::vector
    FROM generate_series(1, 10) g;
  INSERT INTO kb.notes (heading, body, tags)
    SELECT 'Note ' || g,
      CASE WHEN g = 1 THEN 'Glacier hiking checklist: crampons, rope, ice axe' ELSE 'body of note ' || g END, NULL
    FROM generate_series(1, 15) g;
`

const CONFIG = {
  sources: {
    messages: {
      table: "public.messages",
      text: "content",
      vector: "embedding",
      filters: ["chat_id"],
      created_at: "created_at"
    },
    atoms: {
      table: "atoms",
      text: "{title}\n\n{content}",
      vector: "embedding",
      title: "title",
      filters: ["type", "topic_id"]
    },
    notes: { table: "kb.notes", text: "{heading}: {body} {tags}", title: "heading", content: "body" }
  }
}

/** The user's own columns, by table, as the catalog lists them: nothing of autoembed may appear here. */
const USER_COLUMNS = `
  SELECT table_schema || '.' || table_name || '.' || column_name || ':' || data_type AS c
  FROM information_schema.columns
  WHERE table_schema IN ('public', 'kb') ORDER BY 1`
const SCHEMAS =
  `SELECT nspname AS s FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' ORDER BY 1`

describe(`attach to an existing database by configuration (${tier()})`, () => {
  const work = Fs.mkdtempSync(Path.join(Os.tmpdir(), "autoembed-attach-"))
  const dataDir = Path.join(work, "pglite")
  const configPath = Path.join(work, "autoembed.config.json")
  let fake: FakeProviderServer
  let database: { url: string; drop: () => Promise<void> } | undefined
  let env: Record<string, string> = {}

  /** Plain SQL as another service would send it: a pg client on the server, PGlite's own on the embedded tier. */
  const query = <Row = Record<string, unknown>>(text: string) => tierQuery<Row>({ url: database?.url, dataDir }, text)
  const psql = (statement: string) => {
    const r = spawnSync("psql", [database!.url, "-v", "ON_ERROR_STOP=1", "-qc", statement], { encoding: "utf8" })
    expect(r.status, r.stderr).toBe(0)
  }
  /** Texts embedded, without each process's start-up probe. */
  const texts = () => fake.embedRequests("ollama").flatMap((r) => r.inputs).filter((t) => t !== PROBE).length
  const cli = async (args: ReadonlyArray<string>, extra: Record<string, string> = {}) => {
    const run = startCli(args, { ...env, ...extra })
    const code = await run.exited
    return { code, stdout: run.output.stdout, stderr: run.output.stderr }
  }

  beforeAll(async () => {
    fake = await startFakeProviderServer({ modelDimensions: { "mxbai-embed-large": DIMS } })
    database = serverUrl() ? await scratchDatabase() : undefined
    await query(PYTHON_SCHEMA)
    Fs.writeFileSync(configPath, JSON.stringify(CONFIG, null, 2))
    env = {
      ...tierEnv({ url: database?.url, dataDir }),
      AUTOEMBED_CONFIG: configPath,
      EMBEDDING_PROVIDER: "ollama",
      OLLAMA_HOST: fake.ollamaHost,
      EMBEDDING_MODEL: "mxbai-embed-large",
      EMBEDDING_DIMENSIONS: String(DIMS),
      AUTOEMBED_SWEEP_INTERVAL_MS: "500"
    }
  }, 120_000)

  afterAll(async () => {
    await fake?.close()
    await database?.drop()
    Fs.rmSync(work, { recursive: true, force: true })
  })

  let columnsBefore: Array<{ c: string }> = []
  let schemasBefore: Array<{ s: string }> = []

  it("a dry run reports every source's missing rows from the configuration file alone", async () => {
    columnsBefore = await query(USER_COLUMNS)
    schemasBefore = await query(SCHEMAS)
    const dry = await cli(["backfill", "--dry-run", "--json"])
    expect(dry.stderr).toBe("")
    expect(dry.code).toBe(0)
    expect(JSON.parse(dry.stdout)).toMatchObject({
      dry_run: true,
      entity_types: {
        messages: { missing: 237, stale: 0, failed: 0 },
        atoms: { missing: 125, stale: 0, failed: 0 },
        notes: { missing: 15, stale: 0, failed: 0 }
      },
      total: 377
    })
    // The built-in model is off: none of its tables were created.
    expect(await query(`SELECT to_regclass('public.atom_links') AS t`)).toEqual([{ t: null }])
  }, 120_000)

  it("a backfill leaves no NULL vector, adds only the autoembed schema and changes no user column", async () => {
    const run = await cli(["backfill", "--json"])
    expect(run.code, run.stderr).toBe(0)
    const [counts] = await query<{ messages: number; atoms: number; notes: number; old: number }>(`
      SELECT (SELECT count(*)::int FROM messages WHERE embedding IS NULL) AS messages,
        (SELECT count(*)::int FROM atoms WHERE embedding IS NULL) AS atoms,
        (SELECT count(*)::int FROM kb.notes n
          WHERE NOT EXISTS (SELECT 1 FROM autoembed.notes_vectors v WHERE v.id = n.id)) AS notes,
        (SELECT count(*)::int FROM messages WHERE embedding = array_fill(0.01::float4, ARRAY[1024])::vector) AS old`)
    expect(counts).toEqual({ messages: 0, atoms: 0, notes: 0, old: 20 })
    // Exactly the 377 missing texts went to the provider; the vectors already there were adopted, not paid for again.
    expect(texts()).toBe(377)
    expect(await query(USER_COLUMNS)).toEqual(columnsBefore)
    const schemas = (await query<{ s: string }>(SCHEMAS)).map((r) => r.s)
    expect(schemas.filter((s) => !schemasBefore.some((b) => b.s === s))).toEqual(["autoembed"])
    // In the user's schemas: three triggers per source and the HNSW indexes on their vector columns, nothing else.
    const triggers = await query<{ t: string }>(`
      SELECT c.relname || '.' || tg.tgname AS t FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
      WHERE NOT tg.tgisinternal AND c.relnamespace <> 'autoembed'::regnamespace ORDER BY 1`)
    expect(triggers.map((t) => t.t)).toEqual([
      "atoms.autoembed_atoms_del",
      "atoms.autoembed_atoms_ins",
      "atoms.autoembed_atoms_upd",
      "messages.autoembed_messages_del",
      "messages.autoembed_messages_ins",
      "messages.autoembed_messages_upd",
      "notes.autoembed_notes_del",
      "notes.autoembed_notes_ins",
      "notes.autoembed_notes_upd"
    ])
    const indexes = await query<{ i: string }>(`
      SELECT schemaname || '.' || indexname AS i FROM pg_indexes
      WHERE schemaname IN ('public', 'kb') AND indexname LIKE 'autoembed%' ORDER BY 1`)
    expect(indexes.map((i) => i.i)).toEqual(["public.autoembed_atoms_hnsw", "public.autoembed_messages_hnsw"])
    const sources = await cli(["sources", "--json"])
    expect(sources.code, sources.stderr).toBe(0)
    const report = JSON.parse(sources.stdout)
    expect(report.problems).toEqual([])
    expect(
      report.sources.map((
        s: { name: string; missing_vectors: number; triggers: number }
      ) => [s.name, s.missing_vectors, s.triggers])
    )
      .toEqual([["messages", 0, 3], ["atoms", 0, 3], ["notes", 0, 3]])
  }, 180_000)

  it(
    "a source removed from the file loses its triggers on the next migrate; adding it back restores them",
    async () => {
      const triggersOf = async () =>
        (await query<{ t: string }>(`SELECT c.relname AS t FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
        WHERE NOT tg.tgisinternal AND c.relnamespace <> 'autoembed'::regnamespace ORDER BY 1`))
          .map((r) => r.t)
      const { notes: _, ...rest } = CONFIG.sources
      const smaller = Path.join(work, "smaller.config.json")
      Fs.writeFileSync(smaller, JSON.stringify({ sources: rest }))
      const removed = await cli(["migrate"], { AUTOEMBED_CONFIG: smaller })
      expect(removed.code, removed.stderr).toBe(0)
      expect(new Set(await triggersOf())).toEqual(new Set(["atoms", "messages"]))
      // Its vectors stay in autoembed's schema until uninstall: declaring it again finds them all.
      const back = await cli(["migrate"])
      expect(back.code, back.stderr).toBe(0)
      expect(await triggersOf()).toEqual([
        "atoms",
        "atoms",
        "atoms",
        "messages",
        "messages",
        "messages",
        "notes",
        "notes",
        "notes"
      ])
      const dry = JSON.parse((await cli(["backfill", "--dry-run", "--json"])).stdout)
      expect(dry.total).toBe(0)
    },
    120_000
  )

  it.skipIf(serverUrl() === undefined)(
    "rows that psql writes are embedded by a running worker; a column the text does not read re-embeds nothing",
    async () => {
      const worker = startCli(["worker"], env)
      try {
        await waitFor(async () => worker.output.stdout.includes("autoembed worker"), 60_000, "the worker to start")
        psql(
          "INSERT INTO messages (telegram_message_id, chat_id, content) " +
            "VALUES (9001, 77, 'psql wrote this message about the glacier survey')"
        )
        psql(`UPDATE atoms SET content = 'rollbacks need a tested runbook' WHERE id = 1`)
        const embedded = async () => {
          const [r] = await query<{ m: boolean; a: boolean }>(`
          SELECT (SELECT embedding IS NOT NULL FROM messages WHERE telegram_message_id = 9001) AS m,
            (SELECT hash = md5('Atom 1' || E'\\n\\n' || 'rollbacks need a tested runbook') FROM autoembed.rows
              WHERE source = 'atoms' AND row_id = '1') AS a`)
          return r.m === true && r.a === true
        }
        await waitFor(embedded, 15_000, "the psql writes to be embedded")
        const calls = texts()
        psql(`UPDATE messages SET chat_id = 99, score = 0.5 WHERE telegram_message_id = 9001`)
        psql(`UPDATE atoms SET topic_id = 2 WHERE id = 1`)
        const [queued] = await query<{ n: number }>(`SELECT count(*)::int AS n FROM autoembed.queue`)
        expect(queued.n).toBe(0)
        await new Promise((r) => setTimeout(r, 1500))
        expect(texts()).toBe(calls)
      } finally {
        await stop(worker.child)
      }
    },
    120_000
  )

  it("search answers with the user's own ids (bigint and uuid) and filters on declared columns", async () => {
    const server = await startServer({
      workers: false,
      server: { host: "127.0.0.1", port: 0 },
      config: {
        provider: "ollama",
        ollamaHost: fake.ollamaHost,
        model: Option.some("mxbai-embed-large"),
        dimensions: DIMS,
        dataDir,
        databaseUrl: database ? Option.some(Redacted.make(database.url)) : Option.none(),
        logLevel: "warning",
        // The same declarations the CLI read from the file (this process has no AUTOEMBED_CONFIG).
        sources: CONFIG.sources as any,
        builtin: false
      }
    })
    try {
      const get = async (params: string) => {
        const res = await fetch(`${server.url}/v1/search?${params}`)
        return { status: res.status, body: await res.json() as any }
      }
      const notes = await get("q=glacier+hiking+checklist+crampons&types=notes&mode=text")
      expect(notes.status).toBe(200)
      expect(notes.body.results[0]).toMatchObject({ type: "notes", title: "Note 1" })
      expect(notes.body.results[0].id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-/)
      const messages = await get("q=staging+deploy&types=messages&mode=hybrid&filter.chat_id=43&limit=20")
      expect(messages.status).toBe(200)
      expect(messages.body.results.length).toBeGreaterThan(0)
      expect(messages.body.results.every((r: { id: unknown }) => typeof r.id === "number")).toBe(true)
      const ids = messages.body.results.map((r: { id: number }) => r.id).join(",")
      const chats = await query<{ chat_id: number }>(`SELECT DISTINCT chat_id::int FROM messages WHERE id IN (${ids})`)
      expect(chats).toEqual([{ chat_id: 43 }])
      const vector = await get("q=what+we+learned+about+rollbacks&types=atoms&mode=vector")
      expect(vector.status).toBe(200)
      expect(vector.body.results).toHaveLength(10)
      const bad = await get("q=x&types=messages&filter.chat_id=forty-two")
      expect(bad.status).toBe(422)
      expect(bad.body.error.message).toBe("filter.chat_id must be a whole number")
      const undeclared = await get("q=x&filter.sender=user1")
      expect(undeclared.status).toBe(422)
      const builtin = await fetch(`${server.url}/v1/messages`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{\"messages\":[{\"content\":\"x\"}]}"
      })
      expect(builtin.status).toBe(404)
      expect((await builtin.json() as any).error.code).toBe("builtin_disabled")
    } finally {
      await server.close()
    }
    // The CLI takes the same filters.
    const cliSearch = await cli([
      "search",
      "staging deploy",
      "--types",
      "messages",
      "--filter",
      "chat_id=43",
      "--limit",
      "20",
      "--json"
    ])
    expect(cliSearch.code, cliSearch.stderr).toBe(0)
    const found = JSON.parse(cliSearch.stdout).results as Array<{ id: number }>
    expect(found.length).toBeGreaterThan(0)
    const chats = await query<{ chat_id: number }>(
      `SELECT DISTINCT chat_id::int FROM messages WHERE id IN (${found.map((r) => r.id).join(",")})`
    )
    expect(chats).toEqual([{ chat_id: 43 }])
    // --json is the contract's encoding: it validates against the same document the server publishes.
    const doc = openApiDocument({ version: "test" })
    const searchAnswer = ["paths", "/v1/search", "get", "responses", "200", "content", "application/json", "schema"]
    expect(await validateInDocument(doc, searchAnswer, JSON.parse(cliSearch.stdout))).toBe(true)
    const status = await cli(["status", "--json"])
    expect(status.code, status.stderr).toBe(0)
    expect(await validateInDocument(doc, ["components", "schemas", "StatusReport"], JSON.parse(status.stdout))).toBe(
      true
    )
  }, 120_000)

  it("uninstall removes every trace and keeps the user's vectors", async () => {
    const [before] = await query<{ n: number }>(`SELECT count(*)::int AS n FROM messages WHERE embedding IS NOT NULL`)
    const refused = await cli(["uninstall"])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toMatch(/Run it with --yes to confirm/)
    const removed = await cli(["uninstall", "--yes"])
    expect(removed.code, removed.stderr).toBe(0)
    expect(await query(`SELECT tgname FROM pg_trigger WHERE NOT tgisinternal`)).toEqual([])
    expect(await query(`SELECT nspname FROM pg_namespace WHERE nspname = 'autoembed'`)).toEqual([])
    expect(await query(`SELECT indexname FROM pg_indexes WHERE indexname LIKE 'autoembed%'`)).toEqual([])
    const [after] = await query<{ n: number }>(`SELECT count(*)::int AS n FROM messages WHERE embedding IS NOT NULL`)
    expect(after.n).toBe(before.n)
    expect(await query(USER_COLUMNS)).toEqual(columnsBefore)
  }, 120_000)
})
