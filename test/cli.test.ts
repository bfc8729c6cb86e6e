import { Effect, Exit, Scope } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startFakeProviderServer } from "./fakes/FakeProviderServer.js"
import { fakeOpenAIEnv, seedBuiltinRows } from "./support/BuiltinRows.js"
import { startCli } from "./support/Processes.js"
import { createScratchDatabase, serverUrl, tier } from "./support/TestDatabase.js"

const PROBE = "autoembed probe"

/** The CLI as a user runs it, on this test tier: a temp embedded database, or a scratch one on the server. */
describe(`pnpm cli (${tier()})`, () => {
  const scope = Effect.runSync(Scope.make())
  const dataDir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "autoembed-cli-"))
  const fake = startFakeProviderServer()
  let env: Record<string, string> = {}

  beforeAll(async () => {
    const server = await fake
    const database = serverUrl() ? (await Effect.runPromise(Scope.extend(createScratchDatabase, scope))).url : undefined
    env = fakeOpenAIEnv(server, { url: database, dataDir })
    // An existing database: rows written before autoembed was there (no pending state).
    await seedBuiltinRows(server, { url: database, dataDir }, { messages: 1500, atoms: 200 })
  }, 120_000)

  afterAll(async () => {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await (await fake).close()
    Fs.rmSync(dataDir, { recursive: true, force: true })
  })

  it("backfill --dry-run prints Messages, Atoms and Total and changes nothing", async () => {
    const human = startCli(["backfill", "--dry-run"], env)
    expect(await human.exited, human.output.stderr).toBe(0)
    expect(human.output.stdout).toMatch(/Messages\s+1,500\s+0\s+0/)
    expect(human.output.stdout).toMatch(/Atoms\s+200\s+0\s+0/)
    expect(human.output.stdout).toMatch(/Total\s+1,700/)
    const json = startCli(["backfill", "--dry-run", "--json"], env)
    expect(await json.exited).toBe(0)
    expect(JSON.parse(json.output.stdout)).toMatchObject({
      dry_run: true,
      entity_types: { atoms: { missing: 200, stale: 0, failed: 0 }, messages: { missing: 1500, stale: 0, failed: 0 } },
      total: 1700
    })
  }, 120_000)

  it("a backfill interrupted half-way (Ctrl-C) resumes on the next run; no row is embedded twice", async () => {
    const server = await fake
    server.reset({ latencyMs: 120 })
    server.requests.length = 0
    const first = startCli(["backfill", "--type", "messages", "--batch-size", "25", "--concurrency", "2"], env)
    // Without a TTY the CLI prints one JSON line per second.
    const deadline = Date.now() + 90_000
    while (Date.now() < deadline) {
      const lines = first.output.stdout.trim().split("\n").filter(Boolean)
      const last = lines.length ? JSON.parse(lines[lines.length - 1]) : undefined
      if (last && last.processed >= 300) break
      await new Promise((r) => setTimeout(r, 100))
    }
    first.child.kill("SIGINT")
    expect(await first.exited).toBe(130)
    expect(first.output.stderr).toMatch(/Interrupted/)
    const embeddedBefore = server.embedRequests("openai").filter((r) => r.status === 200).flatMap((r) => r.inputs)
      .filter((t) => t !== PROBE)
    expect(embeddedBefore.length).toBeGreaterThan(0)
    expect(embeddedBefore.length).toBeLessThan(1500)

    server.behaviour.latencyMs = 0
    const second = startCli(["backfill", "--type", "messages", "--json"], env)
    expect(await second.exited, second.output.stderr).toBe(0)
    const done = JSON.parse(second.output.stdout.trim().split("\n").pop()!)
    expect(done).toMatchObject({ event: "done", state: "succeeded", failed: 0 })
    expect(done.succeeded).toBe(1500 - embeddedBefore.length)
    const all = server.embedRequests("openai").filter((r) => r.status === 200).flatMap((r) => r.inputs).filter((t) =>
      t !== PROBE
    )
    expect(all.length).toBe(1500)
    expect(new Set(all).size).toBe(1500)

    const dry = startCli(["backfill", "--dry-run", "--json"], env)
    expect(await dry.exited).toBe(0)
    expect(JSON.parse(dry.output.stdout).entity_types.messages).toMatchObject({
      missing: 0,
      stale: 0,
      failed: 0,
      tokens: 0
    })
  }, 180_000)

  it("mistakes print one line and exit non-zero", async () => {
    const cases: Array<[ReadonlyArray<string>, Record<string, string>, number, RegExp]> = [
      [["backfill", "--limit", "0"], {}, 1, /--limit must be a positive whole number/],
      [["backfill", "--type", "nope", "--dry-run"], {}, 1, /Unknown entity type "nope"/],
      [["status"], { EMBEDDING_DIMENSIONS: "-5" }, 2, /EMBEDDING_DIMENSIONS/],
      [
        ["status"],
        { AUTOEMBED_INDEX_BUILD_WORKERS: "-1" },
        2,
        /AUTOEMBED_INDEX_BUILD_WORKERS must be a whole number from 0 to 64/
      ],
      [["status"], { AUTOEMBED_INDEX_BUILD_MEMORY_MB: "8" }, 2, /AUTOEMBED_INDEX_BUILD_MEMORY_MB must be from 16/],
      [["status"], { EMBEDDING_PROVIDER: "ollama", OLLAMA_HOST: "http://127.0.0.1:9" }, 2, /OLLAMA_HOST/],
      [["search", ""], {}, 1, /q must not be empty/],
      // The same decoding as GET /v1/search: numbers in plain decimal digits only.
      [["search", "deploy", "--limit", "0x10"], {}, 1, /limit must be a whole number in decimal digits/]
    ]
    for (const [args, extra, code, message] of cases) {
      const run = startCli(args, { ...env, ...extra })
      const exit = await run.exited
      expect(exit, `${args.join(" ")}: ${run.output.stderr}`).toBe(code)
      expect(run.output.stderr).toMatch(message)
      expect(run.output.stderr).not.toMatch(/\n\s+at /)
    }
  }, 300_000)
})
