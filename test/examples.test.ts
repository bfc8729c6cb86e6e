import { AutoEmbedError, createAutoEmbed } from "@autoembed/core"
import { Effect, Exit, Scope } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type NotesService, startNotesService } from "../examples/notes-service/src/NotesService.js"
import { createScratchDatabase, serverUrl, tier } from "./support/TestDatabase.js"

// The example service on this tier: a scratch database on the server, or embedded PGlite in a
// temporary directory (the service opens it once to create its table, so it cannot be in memory).
const scope = Effect.runSync(Scope.make())
let databaseUrl: string | undefined
let dataDir: string | undefined
let service: NotesService

const json = async (path: string, init?: RequestInit) => {
  const res = await fetch(`${service.url}${path}`, { ...init, headers: { "content-type": "application/json" } })
  return { status: res.status, body: (await res.json()) as any }
}

const waitUntilEmbedded = async (count: number) => {
  const deadline = Date.now() + 30_000
  for (;;) {
    const { body } = await json("/status")
    if (body.notes.pending === 0 && body.notes.embedded === count && body.notes.missing === 0) return body
    if (Date.now() > deadline) throw new Error(`notes not embedded in time: ${JSON.stringify(body)}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

beforeAll(async () => {
  if (serverUrl()) databaseUrl = (await Effect.runPromise(Scope.extend(createScratchDatabase, scope))).url
  else dataDir = mkdtempSync(join(tmpdir(), "autoembed-notes-"))
  service = await startNotesService({
    databaseUrl,
    dataDir,
    port: 0,
    autoembed: { provider: "local", dimensions: 256 }
  })
})

afterAll(async () => {
  await service?.close()
  await Effect.runPromise(Scope.close(scope, Exit.void))
  if (dataDir) rmSync(dataDir, { recursive: true, force: true })
})

describe(`examples/notes-service (${tier()})`, () => {
  const notes = [
    {
      title: "Postgres backups",
      body: "Nightly pg_dump of the production database runs at 02:00 and is copied to object storage."
    },
    { title: "Team lunch", body: "Friday lunch moves to the Italian place around the corner." },
    {
      title: "Deploy checklist",
      body: "Before deploying, run migrations, check the dashboards and announce the release in the channel."
    }
  ]
  const ids: Array<number> = []

  it("embeds the rows the service inserts into its own table", async () => {
    for (const note of notes) {
      const { status, body } = await json("/notes", { method: "POST", body: JSON.stringify(note) })
      expect(status).toBe(201)
      ids.push(body.id)
    }
    const status = await waitUntilEmbedded(3)
    expect(status.model).toBe("local/local-hash-v1")
    const rows = await service.autoembed.query<{ id: number; dims: number; model: string }>(
      // The notes table has no vector column: its vectors and bookkeeping live in autoembed's schema.
      `SELECT n.id, vector_dims(v.embedding) AS dims, r.model FROM notes n JOIN autoembed.notes_vectors v ON v.id = n.id
       JOIN autoembed.rows r ON r.source = 'notes' AND r.row_id = n.id::text ORDER BY n.id`
    )
    expect(rows.map((r) => [Number(r.id), r.dims, r.model])).toEqual(ids.map((id) => [id, 256, "local/local-hash-v1"]))
  })

  it("finds them by meaning through the service's search route", async () => {
    const { status, body } = await json(
      `/search?q=${encodeURIComponent("nightly database backup with pg_dump")}&mode=vector`
    )
    expect(status).toBe(200)
    expect(body.results[0]).toMatchObject({ type: "notes", id: ids[0], title: "Postgres backups" })
    expect(body.results[0].score).toBeGreaterThan(body.results[1].score)
    const hybrid = await json(`/search?q=${encodeURIComponent("italian lunch on friday")}`)
    expect(hybrid.body.results[0]).toMatchObject({ id: ids[1], title: "Team lunch" })
  })

  it("re-embeds an edited row, and search follows the new content", async () => {
    const before = await service.autoembed.query<{ hash: string }>(
      "SELECT hash FROM autoembed.rows WHERE source = 'notes' AND row_id = $1::text",
      [ids[1]]
    )
    const { status } = await json(`/notes/${ids[1]}`, {
      method: "PATCH",
      body: JSON.stringify({ body: "Kubernetes cluster upgrade to 1.31 is scheduled for Tuesday night." })
    })
    expect(status).toBe(200)
    const deadline = Date.now() + 30_000
    let hash = before[0].hash
    while (hash === before[0].hash && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100))
      hash = (await service.autoembed.query<{ hash: string }>(
        "SELECT hash FROM autoembed.rows WHERE source = 'notes' AND row_id = $1::text",
        [ids[1]]
      ))[0].hash
    }
    expect(hash).not.toBe(before[0].hash)
    await waitUntilEmbedded(3)
    const { body } = await json(`/search?q=${encodeURIComponent("kubernetes cluster upgrade")}&mode=vector`)
    expect(body.results[0]).toMatchObject({ id: ids[1] })
  })

  it("enqueue catches up rows written with the triggers disabled", async () => {
    await service.autoembed.query("ALTER TABLE notes DISABLE TRIGGER autoembed_notes_ins")
    const [row] = await service.autoembed.query<{ id: number }>(
      "INSERT INTO notes (title, body) " +
        "VALUES ('Bulk import', 'Rows copied in by a migration script with triggers off.') RETURNING id"
    )
    await service.autoembed.query("ALTER TABLE notes ENABLE TRIGGER autoembed_notes_ins")
    const pending = await service.autoembed.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM autoembed.queue WHERE source = 'notes' AND row_id = $1",
      [String(row.id)]
    )
    expect(pending[0].n).toBe(0)
    // Unknown ids are skipped; the written row is queued once.
    expect(await service.autoembed.enqueue("notes", [row.id, 999_999])).toEqual({ queued: 1 })
    expect(await service.autoembed.enqueue("notes", [row.id])).toEqual({ queued: 0 })
    await waitUntilEmbedded(4)
    const { body } = await json(`/search?q=${encodeURIComponent("migration script copied rows")}&mode=vector`)
    expect(body.results[0]).toMatchObject({ id: Number(row.id) })
  })

  it("rejects bad calls with one clear message", async () => {
    await expect(service.autoembed.search({ q: "   " })).rejects.toThrow(/search: .*q must not be empty or blank/)
    await expect(service.autoembed.enqueue("atoms", [1])).rejects.toThrow(
      /enqueue\(atoms\): Unknown entity type "atoms"; known: notes/
    )
    const error = await service.autoembed.search({ q: "x", types: ["nope"] }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(AutoEmbedError)
    expect((error as AutoEmbedError).tag).toBe("SearchInvalid")
    const { status, body } = await json("/search?q=")
    expect(status).toBe(400)
    expect(body.error).toMatch(/q must not be empty/)
  })

  it("reports status and dry-run counts through the facade", async () => {
    const dry = await service.autoembed.dryRun()
    expect(dry.entityTypes.notes).toMatchObject({ missing: 0, stale: 0, failed: 0, tokens: 0 })
    const status = await service.autoembed.status()
    expect(status.sources.notes).toMatchObject({ total: 4, embedded: 4, pending: 0, failed: 0 })
    expect(await service.autoembed.retryFailed()).toEqual({ requeued: 0 })
  })

  it("closes idempotently and refuses calls afterwards", async () => {
    const closing = service.autoembed.close()
    expect(service.autoembed.close()).toBe(closing)
    await closing
    await expect(service.autoembed.status()).rejects.toThrow("status: the autoembed client is closed")
  })
})

describe("createAutoEmbed start-up", () => {
  it("fails with one message naming the setting", async () => {
    await expect(createAutoEmbed({ dimensions: 0 })).rejects.toThrow(
      "autoembed failed to start: dimensions must be a whole number from 1 to 16000, got 0"
    )
    await expect(createAutoEmbed({ databaseUrl: "mysql://x" })).rejects.toThrow(/databaseUrl must be a postgres:\/\//)
    const missing = await createAutoEmbed({
      ...(databaseUrl ? { databaseUrl } : { dataDir: "memory://" }),
      provider: "local",
      dimensions: 64,
      builtinSources: false,
      sources: { docs: { table: "no_such_table", text: "body" } }
    }).catch((e: unknown) => e)
    expect(missing).toBeInstanceOf(AutoEmbedError)
    expect((missing as Error).message).toBe(
      "autoembed failed to start: Source \"docs\" (sources.docs.table in the sources given in code): " +
        "table no_such_table does not exist in the search_path; create it or fix the name"
    )
  })
})
