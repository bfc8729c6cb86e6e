import * as SqlClient from "@effect/sql/SqlClient"
import { afterAll, describe, expect, layer } from "@effect/vitest"
import { Duration, Effect, Either, Layer, Schema, Tracer } from "effect"
import { AutoEmbedConfig } from "../packages/core/src/config/AutoEmbedConfig.js"
import { Backfill } from "../packages/core/src/pipeline/Backfill.js"
import { Status } from "../packages/core/src/pipeline/Status.js"
import { WorkerStatus } from "../packages/core/src/pipeline/WorkerStatus.js"
import { makeOllamaProvider } from "../packages/core/src/providers/OllamaProvider.js"
import { QueryCache } from "../packages/core/src/search/QueryCache.js"
import { Search, SearchRequest } from "../packages/core/src/search/Search.js"
import { EmbeddingSets } from "../packages/core/src/sets/EmbeddingSets.js"
import { type SetError, SetRegistry } from "../packages/core/src/sets/SetRegistry.js"
import { ensureIndexes } from "../packages/core/src/sources/Installer.js"
import { indexSettingsOf } from "../packages/core/src/sources/Sources.js"
import { VectorIndex } from "../packages/core/src/storage/VectorIndex.js"
import { startFakeProviderServer } from "./fakes/FakeProviderServer.js"
import { pipelineLayer, waitUntilIdle } from "./support/Pipeline.js"
import { tier } from "./support/TestDatabase.js"

/**
 * Embedding sets side by side, on the built-in `messages` source written by plain SQL: set A is the
 * configured one (Ollama's wire protocol, 32-d), set B another model of another size (OpenAI's wire
 * protocol, 48-d), each through the official client against its own fake server.
 */
const fakeA = await startFakeProviderServer({ modelDimensions: { "mxbai-embed-large": 32 } })
const fakeB = await startFakeProviderServer()
afterAll(async () => {
  await fakeA.close()
  await fakeB.close()
})

const ROWS = 500
const TOPICS = [
  "database migrations locking tables",
  "deploying the billing service",
  "flaky integration tests in CI",
  "the search index rebuild",
  "lunch plans for the offsite",
  "rotating the API keys",
  "a memory leak in the worker",
  "customer reports of slow pages",
  "the quarterly roadmap review",
  "backups and restore drills"
]

const providerA = makeOllamaProvider({
  host: fakeA.ollamaHost,
  model: "mxbai-embed-large",
  dimensions: 32,
  timeoutMs: 10_000
})
const setsLayer = Status.Default.pipe(
  Layer.provideMerge(WorkerStatus.fromQueue),
  Layer.provideMerge(Layer.mergeAll(EmbeddingSets.Default, Backfill.Default)),
  Layer.provideMerge(Search.DefaultWithoutDependencies),
  Layer.provideMerge(QueryCache.Default),
  Layer.provideMerge(pipelineLayer({ provider: providerA, overrides: { dimensions: 32, sweepIntervalMs: 300 } }))
)

const search = (q: string, options: { set?: string; mode?: "vector" | "hybrid" } = {}) =>
  Effect.gen(function*() {
    const request = yield* Schema.decodeUnknown(SearchRequest)({
      q,
      types: ["messages"],
      mode: options.mode ?? "vector",
      limit: 5,
      ...(options.set ? { set: options.set } : {})
    })
    return yield* (yield* Search).search(request)
  })

/** The SQL statements an effect runs, as @effect/sql's spans record them (their db.query.text). */
const statementsOf = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const base = yield* Effect.tracer
    const statements: Array<string> = []
    const tracer = Tracer.make({
      context: base.context,
      span: (...args) => {
        const span = base.span(...args)
        const attribute = span.attribute.bind(span)
        span.attribute = (key, value) => {
          if (key === "db.query.text") statements.push(String(value))
          attribute(key, value)
        }
        return span
      }
    })
    const result = yield* Effect.withTracer(effect, tracer)
    return { result, statements }
  })

/** Polls until the set has no missing or stale row. */
const waitComplete = (name: string) =>
  Effect.gen(function*() {
    const sets = yield* EmbeddingSets
    const deadline = Date.now() + 60_000
    while (Date.now() < deadline) {
      const report = yield* sets.get("messages", name)
      if (report.missing + report.stale === 0 && report.pending === 0) return report
      yield* Effect.sleep(Duration.millis(50))
    }
    return yield* Effect.dieMessage(
      `set ${name} did not complete: ${JSON.stringify(yield* sets.get("messages", name))}`
    )
  })

describe(`embedding sets (${tier()})`, () => {
  layer(setsLayer, { timeout: 180_000, excludeTestServices: true })((it) => {
    let a = ""
    let b = ""

    it.effect("500 rows written by SQL are embedded by the configured set A", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`
          INSERT INTO messages (content)
          SELECT 'Message ' || g || ' about ' || (${TOPICS}::text[])[1 + g % 10] FROM generate_series(1, ${ROWS}) g`
        expect(yield* waitUntilIdle()).toBe(0)
        const [only] = yield* (yield* EmbeddingSets).list("messages")
        a = only.name
        expect(only).toMatchObject({
          name: "messages@mxbai-embed-large",
          active: true,
          configured: true,
          embedded: ROWS,
          missing: 0,
          dimensions: 32
        })
      }))

    it.effect("an unknown source fails every lifecycle step with a 404 SetError, not a SourceError", () =>
      Effect.gen(function*() {
        const sets = yield* EmbeddingSets
        const registry = yield* SetRegistry
        const steps = [
          sets.list("nonesuch"),
          sets.get("nonesuch", a),
          sets.activate("nonesuch", a),
          sets.rollback("nonesuch"),
          sets.drop("nonesuch", a),
          sets.compare({ source: "nonesuch", a, b: a }),
          sets.add({ source: "nonesuch", provider: "local", model: "local-hash-v1", dimensions: 8 }),
          registry.find("nonesuch", a),
          registry.searchTargets(["nonesuch"], a)
        ]
        for (const step of steps) {
          const error = yield* Effect.flip(step as Effect.Effect<unknown, { readonly _tag: string }>)
          expect(error).toMatchObject({ _tag: "SetError", status: 404 })
          expect((error as SetError).http.code).toBe("set_not_found")
        }
      }))

    it.effect("a model the provider cannot have is named before any question of its dimensions", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(
          (yield* EmbeddingSets).add({ source: "messages", provider: "local", model: "nope" })
        )
        expect(error).toMatchObject({ _tag: "SetError", status: 400 })
        expect(error.message).toBe("the local provider has one model, local-hash-v1, not nope")
      }))

    it.effect("while B backfills, every search on the active set A answers with results", () =>
      Effect.gen(function*() {
        const sets = yield* EmbeddingSets
        fakeB.reset({ perInputLatencyMs: 2 })
        const added = yield* sets.add({
          source: "messages",
          provider: "openai",
          model: "text-embedding-3-small",
          dimensions: 48,
          baseUrl: fakeB.openaiBaseUrl
        })
        b = added.report.name
        expect(b).toBe("messages@text-embedding-3-small")
        expect(added.report).toMatchObject({ active: false, phase: "building", dimensions: 48, total: ROWS })
        let searches = 0
        let empty = 0
        let failed = 0
        const deadline = Date.now() + 60_000
        while (Date.now() < deadline) {
          const report = yield* sets.get("messages", b)
          if (report.missing + report.stale === 0 && report.pending === 0) break
          const answer = yield* Effect.either(search(TOPICS[searches % TOPICS.length]))
          searches++
          // A search every 20 ms: PGlite has one connection, which the workers need too.
          yield* Effect.sleep(Duration.millis(20))
          if (Either.isLeft(answer)) failed++
          else {
            expect(answer.right.model).toBe("ollama/mxbai-embed-large")
            if (answer.right.results.length === 0) empty++
          }
        }
        expect({ empty, failed }).toEqual({ empty: 0, failed: 0 })
        expect(searches).toBeGreaterThan(3)
        const done = yield* waitComplete(b)
        expect(done).toMatchObject({ embedded: ROWS, phase: "ready", index: { exists: true, valid: true } })
        // The vector payload (4 bytes a dimension, an 8-byte header), and the table it sits in besides.
        expect(done.storageBytes).toBe(ROWS * (4 * 48 + 8))
        expect(done.tableBytes).toBeGreaterThan(done.storageBytes)
        // Every row of B was embedded once, by B's provider.
        expect(fakeB.inputCount("openai")).toBe(ROWS + 1)
      }))

    it.effect("a status report counts each set once: the configured ones with the sources, the others once", () =>
      Effect.gen(function*() {
        const registry = yield* SetRegistry
        const { result, statements } = yield* statementsOf(Effect.flatMap(Status, (s) => s.report()))
        const sets = yield* registry.rows
        expect(sets.length).toBeGreaterThan(result.sets.filter((s) => s.configured).length)
        // Store counts run one statement per set (this one names stale_model); index state one per call.
        expect(statements.filter((q) => q.includes("AS stale_model"))).toHaveLength(sets.length)
        expect(statements.filter((q) => q.includes("FROM pg_index i"))).toHaveLength(2)
        // The figures of a configured set are the source's own.
        const configured = result.sets.find((s) => s.name === a)!
        expect(configured).toMatchObject({
          total: result.sources.messages.total,
          embedded: result.sources.messages.embedded,
          missing: result.sources.messages.missing
        })
        expect(result.sets.find((s) => s.name === b)).toMatchObject({ embedded: ROWS, index: { exists: true } })
      }))

    it.effect("compare runs the same searches on both sets: overlap and both sets' counts", () =>
      Effect.gen(function*() {
        const report = yield* (yield* EmbeddingSets).compare({ source: "messages", a, b, sample: 20 })
        expect(report.queries).toBe(20)
        expect(report.querySource).toBe("sampled")
        expect(report.overlapAt10).toBeGreaterThanOrEqual(0)
        expect(report.overlapAt10).toBeLessThanOrEqual(1)
        // Provider and bare model, as each set's SetReport has them.
        expect(report.a).toMatchObject({ name: a, provider: "ollama", model: "mxbai-embed-large", embedded: ROWS })
        expect(report.b).toMatchObject({ name: b, provider: "openai", model: "text-embedding-3-small", dimensions: 48 })
        expect(report.a.dimensions).toBe(32)
        expect(report.b.indexBytes).toBeGreaterThan(0)
        const judged = yield* (yield* EmbeddingSets).compare({
          source: "messages",
          a,
          b,
          // Judged: every row about the index rebuild is relevant (ids 3, 13, 23, ...).
          queries: [{
            text: "the search index rebuild",
            relevant: Object.fromEntries(Array.from({ length: ROWS / 10 }, (_, i) => [String(10 * i + 3), 1]))
          }]
        })
        expect(judged.a.ndcgAt10).toBeGreaterThan(0)
        expect(judged.b.recallAt10).toBeGreaterThanOrEqual(0)
      }))

    it.effect("a set in a vector column of the user's table reports its size by the same measure as B's", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const sets = yield* EmbeddingSets
        yield* sql`ALTER TABLE messages ADD COLUMN alt_embedding vector(48)`
        const added = yield* sets.add({
          source: "messages",
          provider: "local",
          model: "local-hash-v1",
          dimensions: 48,
          vector: "alt_embedding"
        })
        const done = yield* waitComplete(added.report.name)
        const internal = yield* sets.get("messages", b)
        expect(done).toMatchObject({
          storage: "column",
          vectorColumn: "alt_embedding",
          embedded: ROWS,
          tableBytes: null
        })
        // Same rows, same dimensions: the same figure, wherever the vectors sit.
        expect(done.storageBytes).toBe(internal.storageBytes)
        const compared = yield* sets.compare({ source: "messages", a: b, b: added.report.name, sample: 3 })
        expect(compared.b.storageBytes).toBe(compared.a.storageBytes)
        yield* sets.drop("messages", added.report.name)
        yield* sql`ALTER TABLE messages DROP COLUMN alt_embedding`
      }))

    it.effect("add with bulk marks the set in core: no index until its backfill builds it once, mark cleared", () =>
      Effect.gen(function*() {
        const sets = yield* EmbeddingSets
        const vectorIndex = yield* VectorIndex
        const added = yield* sets.add(
          { source: "messages", provider: "local", model: "local-hash-v1", dimensions: 16, name: "messages@bulk" },
          { bulk: true }
        )
        const [marked] = yield* vectorIndex.describe([added.target])
        expect(marked).toMatchObject({ exists: false, bulkMark: expect.stringMatching(/^bulk_loading since /) })
        expect(added.report.index).toMatchObject({ exists: false, bulkMark: marked.bulkMark })
        // What another process's start-up runs: it leaves a marked set's index alone.
        const config = yield* AutoEmbedConfig
        yield* ensureIndexes([added.target], config.stateSchema, indexSettingsOf(config), false)
        expect((yield* vectorIndex.info(added.target)).exists).toBe(false)
        const job = yield* (yield* Backfill).run({ entityTypes: ["messages"], set: "messages@bulk" })
        expect(job).toMatchObject({ state: "succeeded", bulkTypes: [added.target.name] })
        const [built] = yield* vectorIndex.describe([added.target])
        expect(built).toMatchObject({ exists: true, valid: true, bulkMark: null })
        expect(yield* waitComplete("messages@bulk")).toMatchObject({ embedded: ROWS })
        yield* sets.drop("messages", "messages@bulk")
      }))

    it.effect("activating an incomplete set is refused with one line naming the missing rows", () =>
      Effect.gen(function*() {
        const sets = yield* EmbeddingSets
        const sql = yield* SqlClient.SqlClient
        const c = yield* sets.add({
          source: "messages",
          provider: "openai",
          model: "text-embedding-3-large",
          dimensions: 24,
          baseUrl: fakeB.openaiBaseUrl
        })
        // From now on C's provider refuses every request: its rows stay missing.
        fakeB.reset({ failureRate: 1, failureStatus: 500 })
        const refused = yield* Effect.flip(sets.activate("messages", c.report.name))
        expect(refused.message).toMatch(
          new RegExp(`^Set "${c.report.name}" is incomplete: \\d+ of ${ROWS} rows have no vector yet`)
        )
        expect(refused.message).not.toContain("\n")
        const dropped = yield* sets.drop("messages", c.report.name)
        fakeB.reset({})
        const [table] = yield* sql<
          { t: string | null }
        >`SELECT to_regclass(${`autoembed.${dropped.key}_vectors`})::text AS t`
        expect(table.t).toBeNull()
        expect((yield* sets.list("messages")).map((s) => s.name)).toEqual([a, b])
      }))

    it.effect("activate B: search uses B at once; rollback to A is instant", () =>
      Effect.gen(function*() {
        const sets = yield* EmbeddingSets
        const activated = yield* sets.activate("messages", b)
        expect(activated).toMatchObject({ active: true, phase: "active" })
        const onB = yield* search(TOPICS[3])
        expect(onB.model).toBe("openai/text-embedding-3-small")
        expect(onB.results.length).toBeGreaterThan(0)
        // A stays live and searchable by name.
        expect((yield* search(TOPICS[3], { set: a })).model).toBe("ollama/mxbai-embed-large")
        const started = Date.now()
        const back = yield* sets.rollback("messages")
        expect(Date.now() - started).toBeLessThan(5_000)
        expect(back).toMatchObject({ name: a, active: true })
        expect((yield* search(TOPICS[3])).model).toBe("ollama/mxbai-embed-large")
        expect((yield* sets.get("messages", b)).previous).toBe(true)
      }))

    it.effect("an update re-embeds the row in both live sets (each provider once); a delete removes it from both", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const sets = yield* EmbeddingSets
        const text = "A completely new text about vector set migrations"
        const [row] = yield* sql<{ id: string }>`SELECT id::text AS id FROM messages ORDER BY id LIMIT 1`
        fakeA.reset({ modelDimensions: { "mxbai-embed-large": 32 } })
        fakeB.reset({})
        yield* sql`UPDATE messages SET content = ${text} WHERE id = ${row.id}::bigint`
        expect(yield* waitUntilIdle()).toBe(0)
        const calls = (fake: typeof fakeA, protocol: "ollama" | "openai") =>
          fake.embedRequests(protocol).filter((r) => r.inputs.some((i) => i.includes(text))).length
        expect({ a: calls(fakeA, "ollama"), b: calls(fakeB, "openai") }).toEqual({ a: 1, b: 1 })
        const keys = (yield* sets.list("messages")).map((s) => s.key)
        const recorded = yield* sql<{ source: string; hash: string }>`
          SELECT source, hash FROM autoembed.rows WHERE row_id = ${row.id} ORDER BY source`
        expect(recorded.map((r) => r.source).sort()).toEqual([...keys].sort())
        expect(new Set(recorded.map((r) => r.hash)).size).toBe(1)

        yield* sql`DELETE FROM messages WHERE id = ${row.id}::bigint`
        expect(yield* sql`SELECT 1 FROM autoembed.rows WHERE row_id = ${row.id}`).toEqual([])
        const bKey = keys.find((k) => k !== "messages")!
        expect(yield* sql`SELECT 1 FROM ${sql(`autoembed.${bKey}_vectors`)} WHERE id = ${row.id}::bigint`).toEqual([])
      }))

    it.effect("reindex rebuilds every set's index of the named source, not only the configured one", () =>
      Effect.gen(function*() {
        const sets = yield* EmbeddingSets
        const bKey = (yield* sets.get("messages", b)).key
        const rebuilt = yield* (yield* VectorIndex).reindex({ force: true, sources: ["messages"] })
        expect([...rebuilt].sort()).toEqual(["messages", bKey].sort())
        expect((yield* sets.get("messages", b)).index).toMatchObject({ exists: true, valid: true, bulkMark: null })
        expect((yield* search(TOPICS[1], { set: b })).results.length).toBeGreaterThan(0)
      }))

    it.effect("drop B removes its index, its vector table and its bookkeeping", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const sets = yield* EmbeddingSets
        const report = yield* sets.get("messages", b)
        yield* sets.drop("messages", b)
        const [gone] = yield* sql<{ t: string | null; i: string | null }>`
          SELECT to_regclass(${`autoembed.${report.key}_vectors`})::text AS t,
                 to_regclass(${`autoembed.${report.index.name}`})::text AS i`
        expect(gone).toEqual({ t: null, i: null })
        expect(yield* sql`SELECT 1 FROM autoembed.rows WHERE source = ${report.key}`).toEqual([])
        expect(yield* sql`SELECT 1 FROM autoembed.queue WHERE source = ${report.key}`).toEqual([])
        expect((yield* sets.list("messages")).map((s) => s.name)).toEqual([a])
        expect((yield* search(TOPICS[0])).results.length).toBeGreaterThan(0)
      }))
  })
})
