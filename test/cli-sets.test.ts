import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Backfill } from "../packages/core/src/pipeline/Backfill.js"
import { type FakeProviderServer, startFakeProviderServer } from "./fakes/FakeProviderServer.js"
import { scratchDatabase } from "./support/ApiServer.js"
import { fakeOpenAIEnv, seedBuiltinRows } from "./support/BuiltinRows.js"
import { runCli } from "./support/Processes.js"
import { serverUrl, tier } from "./support/TestDatabase.js"
import { tierQuery } from "./support/Tier.js"

const PROBE = "autoembed probe"
const MESSAGES = 300
const ATOMS = 40
const CONFIGURED = "messages@text-embedding-3-small"
const MINILM = "messages@all-minilm"
const LARGE = "messages@large-48"

interface SetJson {
  readonly name: string
  readonly key: string
  readonly source: string
  readonly model: string
  readonly dimensions: number
  readonly active: boolean
  readonly previous: boolean
  readonly phase: string
  readonly total: number
  readonly embedded: number
  readonly missing: number
  readonly index: { readonly name: string; readonly exists: boolean; readonly valid: boolean }
  readonly storage_bytes: number
}

/**
 * `pnpm cli sets ...` as a user runs it (issue 18), on this test tier: the configured OpenAI set
 * (64-d) embedded, a second set through the fake Ollama server (all-minilm, 384-d) backfilled by
 * `sets add --wait`, a third one left incomplete, then activate, search --set, rollback and drop.
 */
describe(`pnpm cli sets (${tier()})`, () => {
  const dataDir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "autoembed-cli-sets-"))
  let fake: FakeProviderServer
  let database: { url: string; drop: () => Promise<void> } | undefined
  let env: Record<string, string> = {}

  /** SQL on the tier's database, between CLI runs. */
  const query = <Row = Record<string, unknown>>(text: string) => tierQuery<Row>({ url: database?.url, dataDir }, text)
  const cli = (args: ReadonlyArray<string>, extra: Record<string, string> = {}) => runCli(args, { ...env, ...extra })
  /** `sets add <source>` of a 48-d text-embedding-3-large set, through the fake OpenAI server. */
  const addLarge = (source: string, ...more: ReadonlyArray<string>) =>
    cli([
      "sets",
      "add",
      source,
      "--provider",
      "openai",
      "--model",
      "text-embedding-3-large",
      "--dimensions",
      "48",
      "--base-url",
      fake.openaiBaseUrl,
      ...more
    ])
  const list = async (): Promise<Array<SetJson>> => {
    const r = await cli(["sets", "list", "messages", "--json"])
    expect(r.code, r.stderr).toBe(0)
    return JSON.parse(r.stdout).sets
  }
  const searchModel = async (args: ReadonlyArray<string> = []) => {
    const r = await cli([
      "search",
      "cli message number 7",
      "--types",
      "messages",
      "--mode",
      "vector",
      "--json",
      ...args
    ])
    expect(r.code, r.stderr).toBe(0)
    const body = JSON.parse(r.stdout) as { model: string; results: Array<{ id: string }> }
    expect(body.results.length).toBeGreaterThan(0)
    return body.model
  }
  /** Texts a protocol's fake embedded for a model, without each process's start-up probe. */
  const embedded = (protocol: "ollama" | "openai", model: string) =>
    fake.embedRequests(protocol).filter((r) => r.model === model && r.status === 200).flatMap((r) => r.inputs)
      .filter((t) => t !== PROBE)

  beforeAll(async () => {
    fake = await startFakeProviderServer()
    database = serverUrl() ? await scratchDatabase() : undefined
    env = fakeOpenAIEnv(fake, { url: database?.url, dataDir })
    // Rows written before autoembed was there, embedded by the configured set.
    await seedBuiltinRows(
      fake,
      { url: database?.url, dataDir },
      { messages: MESSAGES, atoms: ATOMS },
      Effect.gen(function*() {
        const job = yield* Effect.flatMap(Backfill, (b) => b.run({}))
        expect(job).toMatchObject({ state: "succeeded", failed: 0, succeeded: MESSAGES + ATOMS })
      })
    )
  }, 180_000)

  afterAll(async () => {
    await fake?.close()
    await database?.drop()
    Fs.rmSync(dataDir, { recursive: true, force: true })
  })

  it("sets add --wait backfills a set of another provider and dimensions, bulk path above the threshold", async () => {
    fake.requests.length = 0
    const r = await cli(
      ["sets", "add", "messages", "--provider", "ollama", "--model", "all-minilm", "--base-url", fake.ollamaHost]
        .concat(["--wait", "--json"]),
      // 300 rows: above this threshold, so the set loads without its index and builds it once.
      { AUTOEMBED_BULK_THRESHOLD: "100" }
    )
    expect(r.code, r.stderr).toBe(0)
    // The shape GET /v1/sets/{source}/{set} answers (snake_case wire names).
    const report = JSON.parse(r.stdout) as SetJson
    expect(report).toMatchObject({
      base_url: fake.ollamaHost,
      vector_column: null,
      name: MINILM,
      model: "all-minilm",
      dimensions: 384,
      phase: "ready",
      active: false,
      total: MESSAGES,
      embedded: MESSAGES,
      missing: 0,
      index: { exists: true, valid: true, bulk_mark: null }
    })
    const texts = embedded("ollama", "all-minilm")
    expect(texts.length).toBe(MESSAGES)
    expect(new Set(texts).size).toBe(MESSAGES)
    // The configured provider embedded nothing for it.
    expect(embedded("openai", "text-embedding-3-small")).toEqual([])
  }, 180_000)

  it("sets add --wait on a small source prints the set and that it is complete", async () => {
    const r = await addLarge("atoms", "--wait")
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/atoms@text-embedding-3-large\s+openai\/text-embedding-3-large\s+ready\s+48\s+40\/40\s+0/)
    expect(r.stdout).toMatch(/is complete/)
  }, 120_000)

  it("sets add without --wait leaves the backfill to workers; list shows every set", async () => {
    const r = await addLarge("messages", "--name", LARGE)
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout.trim().split("\n")).toHaveLength(1)
    expect(r.stdout).toMatch(new RegExp(`Added set ${LARGE} .*${MESSAGES} rows queued`))

    const sets = await list()
    expect(sets.map((s) => [s.name, s.phase, s.active, s.dimensions, s.embedded, s.missing])).toEqual([
      [CONFIGURED, "active", true, 64, MESSAGES, 0],
      [MINILM, "ready", false, 384, MESSAGES, 0],
      [LARGE, "building", false, 48, 0, MESSAGES]
    ])
    const all = await cli(["sets", "list"])
    expect(all.code, all.stderr).toBe(0)
    expect(all.stdout).toMatch(/Embedding sets of atoms/)
    expect(all.stdout).toMatch(new RegExp(`\\* ${CONFIGURED}\\s+openai/text-embedding-3-small\\s+active`))
    expect(all.stdout).toMatch(new RegExp(`${LARGE}\\s+openai/text-embedding-3-large\\s+building\\s+48\\s+0/300`))
  }, 120_000)

  it("activate of an incomplete set is refused with one line naming how many rows are missing", async () => {
    const r = await cli(["sets", "activate", "messages", LARGE])
    expect(r.code).toBe(1)
    expect(r.stderr.trim().split("\n")).toHaveLength(1)
    expect(r.stderr).toMatch(new RegExp(`incomplete: ${MESSAGES} of ${MESSAGES} rows have no vector yet`))
    expect((await list()).find((s) => s.active)?.name).toBe(CONFIGURED)

    // --force activates it anyway, saying what search misses; rollback undoes it at once.
    const forced = await cli(["sets", "activate", "messages", LARGE, "--force"])
    expect(forced.code, forced.stderr).toBe(0)
    expect(forced.stdout).toMatch(new RegExp(`now reads ${LARGE}.* ${MESSAGES} rows have no vector in it yet\\.`))
    const back = await cli(["sets", "rollback", "messages"])
    expect(back.code, back.stderr).toBe(0)
    expect((await list()).find((s) => s.active)?.name).toBe(CONFIGURED)
  }, 120_000)

  it("search --set reads another set; activate switches search to it; rollback switches back", async () => {
    expect(await searchModel()).toBe("openai/text-embedding-3-small")
    fake.requests.length = 0
    expect(await searchModel(["--set", MINILM])).toBe("ollama/all-minilm")
    expect(embedded("ollama", "all-minilm")).toEqual(["cli message number 7"])

    const activated = await cli(["sets", "activate", "messages", MINILM])
    expect(activated.code, activated.stderr).toBe(0)
    expect(activated.stdout.trim()).toBe(
      `Search on messages now reads ${MINILM}; ${CONFIGURED} stays live, ` +
        "`pnpm cli sets rollback messages` switches back."
    )
    expect(await searchModel()).toBe("ollama/all-minilm")

    const rolledBack = await cli(["sets", "rollback", "messages"])
    expect(rolledBack.code, rolledBack.stderr).toBe(0)
    expect(rolledBack.stdout.trim()).toBe(`Search on messages reads ${CONFIGURED} again; ${MINILM} stays live.`)
    expect(await searchModel()).toBe("openai/text-embedding-3-small")
    const sets = await list()
    expect(sets.find((s) => s.name === CONFIGURED)).toMatchObject({ active: true, previous: false })
    expect(sets.find((s) => s.name === MINILM)).toMatchObject({ active: false, previous: true })
  }, 180_000)

  it("compare prints overlap, both sets' counts, latency and sizes; with qrels nDCG@10 and recall@10", async () => {
    const sampled = await cli(["sets", "compare", "messages", CONFIGURED, MINILM, "--sample", "20", "--json"])
    expect(sampled.code, sampled.stderr).toBe(0)
    // The shape POST /v1/sets/compare answers (snake_case wire names).
    const report = JSON.parse(sampled.stdout)
    expect(report).toMatchObject({
      source: "messages",
      queries: 20,
      query_source: "sampled",
      a: { name: CONFIGURED, provider: "openai", model: "text-embedding-3-small", dimensions: 64, embedded: MESSAGES },
      b: { name: MINILM, provider: "ollama", model: "all-minilm", dimensions: 384, embedded: MESSAGES, total: MESSAGES }
    })
    expect(report.overlap_at_10).toBeGreaterThanOrEqual(0)
    expect(report.overlap_at_10).toBeLessThanOrEqual(1)
    for (const side of [report.a, report.b]) {
      expect(side.latency_p95_ms).toBeGreaterThanOrEqual(side.latency_p50_ms)
      expect(side.storage_bytes).toBeGreaterThan(0)
      expect(side.index_bytes).toBeGreaterThan(0)
      expect(side.ndcg_at_10).toBeUndefined()
    }

    // BEIR files: message N's text is "cli message number N"; the last query has no judgement.
    const queries = Path.join(dataDir, "..", `${Path.basename(dataDir)}-queries.jsonl`)
    const qrels = Path.join(dataDir, "..", `${Path.basename(dataDir)}-qrels.tsv`)
    Fs.writeFileSync(
      queries,
      [3, 14, 159, 265, 35].map((n) => JSON.stringify({ _id: `q${n}`, text: `cli message number ${n}` })).join("\n") +
        `\n${JSON.stringify({ _id: "unjudged", text: "nothing" })}\n`
    )
    Fs.writeFileSync(
      qrels,
      `query-id\tcorpus-id\tscore\n${[3, 14, 159, 265, 35].map((n) => `q${n}\t${n}\t1`).join("\n")}\n`
    )
    try {
      const judged = await cli([
        "sets",
        "compare",
        "messages",
        CONFIGURED,
        MINILM,
        "--queries",
        queries,
        "--qrels",
        qrels
      ])
      expect(judged.code, judged.stderr).toBe(0)
      expect(judged.stdout).toMatch(
        new RegExp(`Comparing ${CONFIGURED} and ${MINILM} of messages over 5 judged queries`)
      )
      expect(judged.stdout).toMatch(/Top-10 overlap: \d+\.\d%/)
      expect(judged.stdout).toMatch(/Model\s+openai\/text-embedding-3-small\s+ollama\/all-minilm/)
      expect(judged.stdout).toMatch(/Embedded\s+300\/300\s+300\/300/)
      expect(judged.stdout).toMatch(/Latency p50\s+[\d.]+ ms\s+[\d.]+ ms/)
      expect(judged.stdout).toMatch(/nDCG@10\s+[01]\.\d{3}\s+[01]\.\d{3}/)
      expect(judged.stdout).toMatch(/Recall@10\s+[01]\.\d{3}\s+[01]\.\d{3}/)
      const asJson = await cli(
        ["sets", "compare", "messages", CONFIGURED, MINILM, "--queries", queries, "--qrels", qrels, "--json"]
      )
      const scored = JSON.parse(asJson.stdout)
      expect(scored).toMatchObject({ queries: 5, query_source: "given" })
      // The exact texts were embedded as rows: each set finds its row.
      for (const side of [scored.a, scored.b]) {
        expect(side.recall_at_10).toBeGreaterThan(0.5)
        expect(side.ndcg_at_10).toBeGreaterThan(0.5)
      }
    } finally {
      Fs.rmSync(queries, { force: true })
      Fs.rmSync(qrels, { force: true })
    }
  }, 180_000)

  it("drop removes the set's vector table and index", async () => {
    const set = (await list()).find((s) => s.name === MINILM)!
    const relations = async () =>
      (await query<{ relname: string }>(
        `SELECT relname FROM pg_class WHERE relname IN ('${set.key}_vectors', '${set.index.name}') ORDER BY 1`
      )).map((r) => r.relname)
    expect(await relations()).toEqual([set.index.name, `${set.key}_vectors`].sort())

    const r = await cli(["sets", "drop", "messages", MINILM])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout.trim().split("\n")).toHaveLength(1)
    expect(r.stdout).toMatch(new RegExp(`Dropped set ${MINILM} of messages`))
    expect(await relations()).toEqual([])
    expect((await list()).map((s) => s.name)).toEqual([CONFIGURED, LARGE])
  }, 120_000)

  it("mistakes print one line and exit non-zero", async () => {
    const cases: Array<[ReadonlyArray<string>, RegExp]> = [
      [["sets", "add", "nope", "--provider", "local", "--model", "local-hash-v1"], /Unknown entity type "nope"/],
      [["sets", "add", "messages", "--provider", "bad", "--model", "x"], /ollama, openai, local/],
      [
        ["sets", "add", "messages", "--provider", "openai", "--model", "text-embedding-3-small", "--dimensions", "0"],
        /dimensions must be a whole number from 1 to 16000/
      ],
      [
        ["sets", "add", "messages", "--provider", "openai", "--model", "text-embedding-3-large", "--name", LARGE],
        new RegExp(`already has a set named "${LARGE}"`)
      ],
      [["sets", "list", "nope"], /Unknown entity type "nope"/],
      [["sets", "activate", "messages", "no-such-set"], /has no embedding set "no-such-set"/],
      [["sets", "activate", "nope", "x"], /Unknown entity type "nope"/],
      // An unknown source is core's 404 in every step (sets.test.ts tries each): exit 1 and one line,
      // never a configuration error's 2, with no handling of its own in the command.
      [["sets", "rollback", "nope"], /Unknown entity type "nope"/],
      [["sets", "compare", "nope", "x", "y"], /Unknown entity type "nope"/],
      // The model the provider cannot have is named, not the dimensions autoembed does not know of it.
      [["sets", "add", "messages", "--provider", "local", "--model", "nope"], /^the local provider has one model/],
      [["sets", "drop", "messages", CONFIGURED], /is active/],
      [["sets", "rollback", "atoms"], /no previous set/],
      [["search", "deploy", "--types", "messages", "--set", "no-such-set"], /has no embedding set "no-such-set"/],
      [["sets", "compare", "messages", CONFIGURED, LARGE, "--qrels", "README.md"], /give both/],
      [["sets", "compare", "messages", CONFIGURED, "no-such-set"], /has no embedding set "no-such-set"/],
      [["sets", "compare", "messages", CONFIGURED, LARGE, "--queries", "/nonexistent/q.jsonl"], /nonexistent/]
    ]
    for (const [args, message] of cases) {
      const run = await cli(args)
      expect(run.code, `${args.join(" ")}: ${run.stderr}`).toBe(1)
      expect(run.stderr).toMatch(message)
      expect(run.stderr.trim().split("\n"), `${args.join(" ")}: ${run.stderr}`).toHaveLength(1)
    }
  }, 420_000)
})
