import * as SqlClient from "@effect/sql/SqlClient"
import { Duration, Effect, Either, Layer, Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as AutoEmbed from "../packages/core/src/AutoEmbed.js"
import { decodeSources, type SourceConfigInput } from "../packages/core/src/config/SourceConfig.js"
import { Search, SearchRequest } from "../packages/core/src/search/Search.js"
import { EmbeddingSets } from "../packages/core/src/sets/EmbeddingSets.js"
import { startFakeProviderServer } from "./fakes/FakeProviderServer.js"
import { pollUntil } from "./support/Pipeline.js"
import { tier } from "./support/TestDatabase.js"
import { openTierDatabase, tierQuery } from "./support/Tier.js"

/**
 * Embedding sets declared in the configuration (`sources.<source>.sets`), on a user's table made
 * by plain SQL: a process that starts adds the missing set and its workers backfill it; `active:
 * true` switches search to it once it is complete; restarts change nothing; a declaration that no
 * longer matches the database stops the start with a line naming the key.
 */
const ROWS = 200
const fake = await startFakeProviderServer()
let database: Awaited<ReturnType<typeof openTierDatabase>>
const exec = (statements: string) => tierQuery(database, statements)

beforeAll(async () => {
  database = await openTierDatabase()
  await exec(`
    CREATE EXTENSION IF NOT EXISTS vector;
    CREATE TABLE notes (id bigserial PRIMARY KEY, body text NOT NULL, emb24 vector(24));
    INSERT INTO notes (body)
      SELECT 'note ' || g || ' about ' || (CASE WHEN g % 2 = 0 THEN 'the staging deploy' ELSE 'an invoice' END)
      FROM generate_series(1, ${ROWS}) g;`)
}, 60_000)

afterAll(async () => {
  await fake.close()
  await database?.drop()
})

const SMALL = "notes@small"
const smallSet = (overrides: Record<string, unknown> = {}) => ({
  provider: "openai",
  model: "text-embedding-3-small",
  dimensions: 48,
  base_url: fake.openaiBaseUrl,
  active: true,
  ...overrides
})
const notes = (
  sets: Record<string, unknown>
): SourceConfigInput => ({ table: "notes", text: "body", sets } as unknown as SourceConfigInput)

/** Runs a program on a fresh process-like layer (a "start"), workers on unless said otherwise. */
const start = <A, E>(
  sets: Record<string, unknown>,
  program: Effect.Effect<A, E, AutoEmbed.AutoEmbedServices>,
  workers = true
) =>
  Effect.runPromise(Effect.either(Effect.scoped(Effect.provide(
    program,
    AutoEmbed.layer({
      env: false,
      workers,
      config: { provider: "local", dimensions: 32, sweepIntervalMs: 200, batchWindowMs: 5, ...database.config },
      sources: { notes: notes(sets) }
    }) as Layer.Layer<AutoEmbed.AutoEmbedServices, AutoEmbed.AutoEmbedStartupError>
  ))))

const search = (q: string, set?: string) =>
  Effect.gen(function*() {
    const request = yield* Schema.decodeUnknown(SearchRequest)({ q, mode: "vector", limit: 5, ...(set ? { set } : {}) })
    return yield* (yield* Search).search(request)
  })

describe(`sets declared in the configuration (${tier()})`, () => {
  it("a declared set is added at start, backfilled by the workers and activated once complete", async () => {
    // First the source alone: its configured set embeds every row, as in a database already in use.
    const first = await start(
      {},
      Effect.gen(function*() {
        const sets = yield* EmbeddingSets
        return yield* pollUntil(
          "the configured set to be complete",
          Effect.map(sets.list("notes"), ([only]) => only.embedded === ROWS ? only : undefined)
        )
      })
    )
    if (Either.isLeft(first)) throw first.left
    const result = await start(
      { [SMALL]: smallSet() },
      Effect.gen(function*() {
        const sets = yield* EmbeddingSets
        const active = yield* pollUntil(
          "the declared set to become active",
          Effect.map(sets.get("notes", SMALL), (r) => r.active ? r : undefined)
        )
        const all = yield* sets.list("notes")
        const answer = yield* search("the staging deploy")
        return { active, all, answer }
      })
    )
    if (Either.isLeft(result)) throw result.left
    const { active, all, answer } = result.right
    expect(active).toMatchObject({ embedded: ROWS, missing: 0, dimensions: 48, configured: false })
    expect(all.find((s) => s.configured)).toMatchObject({ active: false, previous: true, embedded: ROWS })
    expect(answer.model).toBe("openai/text-embedding-3-small")
    expect(answer.results.length).toBeGreaterThan(0)
    // The probe at the start, each row once, and the search's query.
    expect(fake.inputCount("openai")).toBe(ROWS + 2)
  }, 120_000)

  it("a restart with the same file changes nothing; a rollback is not undone by the file", async () => {
    const before = fake.inputCount("openai")
    const result = await start(
      { [SMALL]: smallSet() },
      Effect.gen(function*() {
        const sets = yield* EmbeddingSets
        const names = (yield* sets.list("notes")).map((s) => s.name)
        const back = yield* sets.rollback("notes")
        return { names, back }
      }),
      false
    )
    if (Either.isLeft(result)) throw result.left
    expect(result.right.names).toHaveLength(2)
    expect(result.right.back.configured).toBe(true)
    const again = await start(
      { [SMALL]: smallSet() },
      Effect.gen(function*() {
        yield* Effect.sleep(Duration.millis(600))
        return yield* (yield* EmbeddingSets).get("notes", SMALL)
      })
    )
    if (Either.isLeft(again)) throw again.left
    expect(again.right).toMatchObject({ active: false, previous: true })
    expect(fake.inputCount("openai")).toBe(before)
  }, 120_000)

  it(
    "activation tolerates the rows every set lacks while writes go on, and names the active set's backlog",
    async () => {
      const result = await start(
        { [SMALL]: smallSet() },
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const sets = yield* EmbeddingSets
          // No workers: the new rows are missing from both sets alike.
          yield* sql`INSERT INTO notes (body) SELECT 'late note ' || g FROM generate_series(1, 5) g`
          const switched = yield* sets.activate("notes", SMALL)
          const third = yield* sets.add({ source: "notes", provider: "local", model: "local-hash-v1", dimensions: 16 })
          const refused = yield* Effect.flip(sets.activate("notes", third.report.name))
          yield* sets.drop("notes", third.report.name)
          return { switched, refused }
        }),
        false
      )
      if (Either.isLeft(result)) throw result.left
      expect(result.right.switched).toMatchObject({ active: true, missing: 5 })
      expect(result.right.refused.message).toMatch(
        /^Set "notes@local-hash-v1:16" is incomplete: 205 of 205 rows have no vector yet \(the active set lacks 5\);/
      )
    },
    120_000
  )

  it("set= without types searches the sources that have the set; an unknown set is a 404", async () => {
    const result = await start(
      { [SMALL]: smallSet() },
      Effect.gen(function*() {
        const sets = yield* EmbeddingSets
        const configured = (yield* sets.list("notes")).find((s) => s.configured)!
        const onConfigured = yield* search("an invoice", configured.name)
        const unknown = yield* Effect.flip(search("an invoice", "nope"))
        return { onConfigured, unknown }
      })
    )
    if (Either.isLeft(result)) throw result.left
    expect(result.right.onConfigured.model).toBe("local/local-hash-v1")
    expect(result.right.unknown).toMatchObject({ _tag: "SetError", status: 404 })
    expect(result.right.unknown.message).toMatch(/^No source has an embedding set "nope"; the sets are notes@/)
  }, 120_000)

  it("a declared set cannot be dropped while the file declares it", async () => {
    const result = await start(
      { [SMALL]: smallSet({ active: undefined }) },
      Effect.gen(function*() {
        const sets = yield* EmbeddingSets
        yield* sets.rollback("notes")
        return yield* Effect.flip(sets.drop("notes", SMALL))
      }),
      false
    )
    if (Either.isLeft(result)) throw result.left
    expect(result.right.message).toMatch(
      /is declared in the sources given in code \(sources\.notes\.sets\.notes@small\)/
    )
  }, 120_000)

  it("a set in the user's own vector column is filled, kept current, and dropped leaving the values", async () => {
    const COL = "notes@col"
    const column = { provider: "local", model: "local-hash-v1", dimensions: 24, vector: "emb24" }
    const filled = await start(
      { [SMALL]: smallSet(), [COL]: column },
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const sets = yield* EmbeddingSets
        const done = yield* pollUntil(
          "the column set to be complete",
          Effect.map(sets.get("notes", COL), (r) => r.missing + r.stale + r.pending === 0 ? r : undefined)
        )
        const [before] = yield* sql<{ v: string }>`SELECT emb24::text AS v FROM notes WHERE id = 1`
        yield* sql`UPDATE notes SET body = 'a rewritten note about column sets' WHERE id = 1`
        const after = yield* pollUntil(
          "the edited row's column vector",
          Effect.map(
            sql<{ v: string | null }>`SELECT emb24::text AS v FROM notes WHERE id = 1`,
            ([r]) => r.v !== null && r.v !== before.v ? r.v : undefined
          )
        )
        const [nulls] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM notes WHERE emb24 IS NULL`
        const answer = yield* search("column sets", COL)
        return { done, nulls: nulls.n, after, answer }
      })
    )
    if (Either.isLeft(filled)) throw filled.left
    expect(filled.right.done).toMatchObject({
      storage: "column",
      vectorColumn: "emb24",
      embedded: ROWS + 5,
      index: { exists: true, valid: true }
    })
    expect(filled.right.nulls).toBe(0)
    expect(filled.right.answer.results[0].content).toBe("a rewritten note about column sets")
    // Gone from the file, it can be dropped: its trigger and index go, the column keeps its values.
    const dropped = await start(
      { [SMALL]: smallSet() },
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const report = yield* (yield* EmbeddingSets).drop("notes", COL)
        const [left] = yield* sql<{ n: number; index: string | null }>`
          SELECT count(emb24)::int AS n, to_regclass(${`public."autoembed_${report.key}_hnsw"`})::text AS index
          FROM notes`
        const triggers = yield* sql<{ name: string }>`
          SELECT tgname AS name FROM pg_trigger WHERE tgrelid = 'notes'::regclass AND tgname LIKE ${`%${report.key}%`}`
        return { left, triggers, report }
      }),
      false
    )
    if (Either.isLeft(dropped)) throw dropped.left
    expect(dropped.right.left).toEqual({ n: ROWS + 5, index: null })
    expect(dropped.right.triggers).toEqual([])
  }, 180_000)

  it("a declaration that no longer matches the database stops the start, naming the key", async () => {
    const result = await start({ [SMALL]: smallSet({ dimensions: 64 }) }, Effect.void, false)
    expect(Either.isLeft(result)).toBe(true)
    const message = AutoEmbed.startupErrorMessage(Either.isLeft(result) ? result.left : undefined)
    expect(message).toBe(
      `the sources given in code: sources.notes.sets.notes@small: the database's set is openai ` +
        `text-embedding-3-small at 48 dimensions from ${fake.openaiBaseUrl}, the file says openai ` +
        `text-embedding-3-small at 64 dimensions from ${fake.openaiBaseUrl}. A set keeps its model: declare ` +
        "the new one under another name (and drop this one with `pnpm cli sets drop notes notes@small`)"
    )
  }, 120_000)

  it("a declared set whose provider cannot answer stops the start, naming the key", async () => {
    const result = await start(
      { "notes@down": smallSet({ base_url: "http://127.0.0.1:9/v1", active: undefined }) },
      Effect.void,
      false
    )
    const message = AutoEmbed.startupErrorMessage(Either.isLeft(result) ? result.left : undefined)
    expect(message).toMatch(
      /^the sources given in code: sources\.notes\.sets\.notes@down: openai model text-embedding-3-small cannot embed/
    )
  }, 120_000)

  it("at most one declared set of a source may be active", async () => {
    const decoded = await Effect.runPromise(Effect.either(decodeSources({
      notes: notes({ a: smallSet(), b: smallSet({ dimensions: 32 }) })
    }, "autoembed.config.yaml")))
    expect(Either.isLeft(decoded) && decoded.left.message).toBe(
      "autoembed.config.yaml: notes.sets: at most one set may be active: true"
    )
  })
})
