import { execFile } from "node:child_process"
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync
} from "node:fs"
import { tmpdir } from "node:os"
import { join, relative } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

/**
 * `pnpm build` and its output as a consumer gets it. The build runs here (so CI proves it); it is
 * incremental (tsbuildinfo in dist/), so a second run in the same checkout takes seconds.
 */
const root = join(import.meta.dirname, "..")
const work = mkdtempSync(join(tmpdir(), "autoembed-build-"))
let buildOutput = ""

/** Runs a command to its end without blocking this worker's event loop (vitest talks to it meanwhile). */
const run = (command: string, args: ReadonlyArray<string>, cwd: string, env: NodeJS.ProcessEnv = {}) =>
  new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      command,
      args,
      {
        cwd,
        encoding: "utf8",
        timeout: 240_000,
        maxBuffer: 64 * 1024 * 1024,
        env: { ...process.env, NODE_OPTIONS: "", ...env }
      },
      (error, stdout, stderr) =>
        resolve({ status: error ? (typeof error.code === "number" ? error.code : 1) : 0, stdout, stderr })
    )
  })

/** Every file under dir, relative to it, skipping node_modules. */
const listFiles = (dir: string): Array<string> =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && !join(e.parentPath, e.name).includes("node_modules"))
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort()

beforeAll(async () => {
  const result = await run("pnpm", ["build"], root)
  buildOutput = `${result.stdout}\n${result.stderr}`
  if (result.status !== 0) throw new Error(`pnpm build failed (exit ${result.status}):\n${buildOutput.slice(-4000)}`)
}, 600_000)

afterAll(() => rmSync(work, { recursive: true, force: true }))

// Building, deploying and compiling take minutes on a busy two-core machine.
describe("pnpm build", { timeout: 300_000 }, () => {
  it("emits JavaScript and declarations for core, api and cli", () => {
    const expected: Record<string, ReadonlyArray<string>> = {
      core: [
        "index.js",
        "index.d.ts",
        "Facade.js",
        "Facade.d.ts",
        "AutoEmbed.d.ts",
        "providers/index.js",
        "storage/migrations/index.js"
      ],
      api: ["index.js", "index.d.ts", "main.js", "Server.d.ts"],
      cli: ["bin.js", "Cli.js", "Cli.d.ts"]
    }
    for (const [pkg, files] of Object.entries(expected)) {
      for (const file of files) {
        expect(existsSync(join(root, "packages", pkg, "dist", file)), `packages/${pkg}/dist/${file}`).toBe(true)
      }
    }
    // JSON modules the sources import are emitted beside the JavaScript that imports them.
    for (const json of listFiles(join(root, "packages/core/src")).filter((f) => f.endsWith(".json"))) {
      expect(existsSync(join(root, "packages/core/dist", json)), `packages/core/dist/${json}`).toBe(true)
    }
    // No build output may land beside the sources (it would shadow them for tsx).
    for (const pkg of ["core", "api", "cli"]) {
      expect(listFiles(join(root, "packages", pkg, "src")).filter((f) => /\.(js|d\.ts|js\.map)$/.test(f))).toEqual([])
    }
  })

  it(
    "imports @autoembed/core from dist in a fresh Node process, " +
      "without the source condition and without side effects",
    async () => {
      // A consumer that sees only the published shape: package.json and dist/, dependencies beside it.
      const consumer = join(work, "consumer")
      const pkg = join(consumer, "node_modules/@autoembed/core")
      mkdirSync(pkg, { recursive: true })
      cpSync(join(root, "packages/core/package.json"), join(pkg, "package.json"))
      cpSync(join(root, "packages/core/dist"), join(pkg, "dist"), { recursive: true })
      symlinkSync(realpathSync(join(root, "packages/core/node_modules")), join(pkg, "node_modules"), "dir")
      writeFileSync(join(consumer, "package.json"), JSON.stringify({ name: "consumer", type: "module", private: true }))
      const before = listFiles(consumer)

      const script = `
      const m = await import("@autoembed/core")
      await new Promise((r) => setTimeout(r, 300))
      console.log(JSON.stringify({
        resolved: import.meta.resolve("@autoembed/core"),
        names: Object.keys(m).sort(),
        kinds: {
          createAutoEmbed: typeof m.createAutoEmbed,
          layer: typeof m.AutoEmbed?.layer,
          AutoEmbedError: typeof m.AutoEmbedError
        },
        // Anything but timers and stdio means the import opened something (a socket, a file, a database).
        resources: process.getActiveResourcesInfo().filter((r) => !["Timeout", "TTYWrap", "PipeWrap"].includes(r))
      }))`
      const result = await run(process.execPath, ["--input-type=module", "-e", script], consumer, {
        DATABASE_URL: "",
        AUTOEMBED_DATA_DIR: ""
      })
      expect(result.status, result.stderr).toBe(0)
      const out = JSON.parse(result.stdout.trim().split("\n").pop()!)
      expect(out.resolved).toMatch(/node_modules\/@autoembed\/core\/dist\/index\.js$/)
      expect(out.kinds).toEqual({ createAutoEmbed: "function", layer: "function", AutoEmbedError: "function" })
      expect(out.names).toEqual(expect.arrayContaining([
        "AutoEmbed",
        "AutoEmbedConfig",
        "AutoEmbedError",
        "Backfill",
        "EmbeddingProvider",
        "EmbeddingQueue",
        "EmbeddingStore",
        "Extraction",
        "Search",
        "Sources",
        "Status",
        "createAutoEmbed",
        "enqueueRows",
        "startupErrorMessage"
      ]))
      expect(out.resources).toEqual([])
      expect(listFiles(consumer)).toEqual(before)
    }
  )

  it("ships declarations a TypeScript consumer compiles against", async () => {
    const consumer = join(work, "consumer")
    writeFileSync(
      join(consumer, "main.ts"),
      `
      import {
        AutoEmbed, type AutoEmbedClient, createAutoEmbed, type SearchResponse, type SourceConfigInput
      } from "@autoembed/core"
      const notes: SourceConfigInput = { table: "notes", text: "{title}: {body}", vector: "embedding" }
      export const start = async (): Promise<SearchResponse> => {
        const client: AutoEmbedClient = await createAutoEmbed({ databaseUrl: "postgres://localhost/app", sources: { notes }, workers: false })
        const { queued }: { readonly queued: number } = await client.enqueue("notes", [1, 2])
        const status = await client.status()
        const pending: number = status.sources.notes.pending + queued
        // @ts-expect-error dimensions is a number
        await createAutoEmbed({ dimensions: "1024" })
        return client.search({ q: "backups", limit: pending > 0 ? 5 : 10, mode: "hybrid" })
      }
      export const layer = AutoEmbed.layer({ sources: { notes }, env: false })
    `
    )
    writeFileSync(
      join(consumer, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          module: "NodeNext",
          moduleResolution: "NodeNext",
          target: "ES2022",
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: []
        },
        files: ["main.ts"]
      })
    )
    const tsc = join(root, "node_modules/typescript/bin/tsc")
    const result = await run(process.execPath, [tsc, "-p", "tsconfig.json"], consumer)
    expect(`${result.stdout}${result.stderr}`).toBe("")
    expect(result.status).toBe(0)
  })

  it(
    "deploys the CLI with production dependencies only, " +
      "and the deployed CLI runs (the Docker image's last stage)",
    async () => {
      const out = join(work, "deploy")
      const deploy = await run("pnpm", ["--filter", "@autoembed/cli", "deploy", "--prod", out], root)
      expect(deploy.status, deploy.stderr).toBe(0)
      const installed = readdirSync(join(out, "node_modules/.pnpm"))
      expect(installed.filter((name) => /^(typescript|vitest|tsx|testcontainers)@/.test(name))).toEqual([])
      expect(existsSync(join(out, "node_modules/@autoembed/api/static/index.html"))).toBe(true)
      const status = await run(process.execPath, [join(out, "dist/bin.js"), "status", "--json"], work, {
        DATABASE_URL: "",
        AUTOEMBED_DATA_DIR: "memory://",
        EMBEDDING_PROVIDER: "local",
        EMBEDDING_DIMENSIONS: "64"
      })
      expect(status.status, status.stderr).toBe(0)
      expect(JSON.parse(status.stdout).provider).toMatchObject({ provider: "local", dimensions: 64 })
    }
  )
})
