import { Option, Redacted } from "effect"
import { spawn } from "node:child_process"
import { describe, expect, it } from "vitest"
import { StartupFailure } from "../packages/api/src/Runtime.js"
import { startServer } from "../packages/api/src/Server.js"
import { CliExit } from "../packages/cli/src/Cli.js"
import {
  ConfigurationError,
  DatabaseError,
  DimensionMismatch,
  EXIT_CODES,
  exitCodeOf,
  ProviderError,
  ProviderStartupError,
  SearchInvalid,
  SourceError
} from "../packages/core/src/index.js"
import { repoRoot, startCli } from "./support/Processes.js"

const UNREACHABLE = "postgres://postgres@127.0.0.1:9/none"

/** The server's own process (`pnpm start`), with `env` on top of this one's; resolves with its exit code and stderr. */
const startServerProcess = (env: Record<string, string>) => {
  const child = spawn(process.execPath, ["--import", "tsx", "--conditions=source", "packages/api/src/main.ts"], {
    cwd: repoRoot,
    env: { ...process.env, AUTOEMBED_LOG_LEVEL: "warning", ...env },
    stdio: ["ignore", "ignore", "pipe"]
  })
  let stderr = ""
  child.stderr!.on("data", (d) => (stderr += String(d)))
  return new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.once("exit", (code) => resolve({ code, stderr }))
  )
}

/** One table of exit codes for the server and the CLI (they used to disagree on database errors). */
describe("exit codes", () => {
  it("what the user fixes in settings or the environment is 2, anything else 1", () => {
    expect(exitCodeOf(new DatabaseError({ message: "Cannot connect" }))).toBe(EXIT_CODES.configuration)
    expect(exitCodeOf(new SourceError({ message: "bad source" }))).toBe(EXIT_CODES.configuration)
    expect(exitCodeOf(new ProviderStartupError({ message: "unknown model" }))).toBe(EXIT_CODES.configuration)
    expect(exitCodeOf(new ConfigurationError({ message: "PORT: bad" }))).toBe(EXIT_CODES.configuration)
    expect(exitCodeOf(new DimensionMismatch({ message: "768 vs 1024", expected: 1024, actual: 768 }))).toBe(
      EXIT_CODES.configuration
    )
    expect(exitCodeOf(new SearchInvalid({ message: "unknown type" }))).toBe(EXIT_CODES.failed)
    expect(exitCodeOf(new ProviderError({ reason: "Transient", message: "down", provider: "ollama" }))).toBe(
      EXIT_CODES.failed
    )
    // The processes' own wrappers carry a code from the same table.
    expect(exitCodeOf(new CliExit({ exitCode: EXIT_CODES.failed, message: "3 rows failed" }))).toBe(EXIT_CODES.failed)
    expect(exitCodeOf(new StartupFailure({ message: "no port", exitCode: EXIT_CODES.configuration }))).toBe(
      EXIT_CODES.configuration
    )
    expect(exitCodeOf(new Error("a bug"))).toBe(EXIT_CODES.failed)
    expect(exitCodeOf("odd")).toBe(EXIT_CODES.failed)
  })

  it("the server refuses an unreachable DATABASE_URL with exit code 2 and one line naming it", async () => {
    const failure = await startServer({
      workers: false,
      server: { host: "127.0.0.1", port: 0 },
      config: {
        provider: "local",
        dimensions: 8,
        databaseUrl: Option.some(Redacted.make("postgres://postgres@127.0.0.1:9/none"))
      }
    }).then(() => undefined, (e: unknown) => e)
    expect(failure).toBeInstanceOf(StartupFailure)
    expect((failure as StartupFailure).exitCode).toBe(2)
    expect((failure as StartupFailure).message).toMatch(/DATABASE_URL/)
    expect((failure as StartupFailure).message).not.toMatch(/\n/)
  }, 30_000)

  it(
    "the CLI and the server process exit alike (2, one line naming DATABASE_URL) on an unreachable database",
    async () => {
      const env = {
        DATABASE_URL: UNREACHABLE,
        EMBEDDING_PROVIDER: "local",
        EMBEDDING_DIMENSIONS: "8",
        HOST: "127.0.0.1",
        PORT: "0"
      }
      const cli = startCli(["status"], env)
      const [cliCode, server] = await Promise.all([cli.exited, startServerProcess(env)])
      expect(cliCode, cli.output.stderr).toBe(EXIT_CODES.configuration)
      expect(server.code, server.stderr).toBe(cliCode)
      for (const stderr of [cli.output.stderr, server.stderr]) {
        expect(stderr).toMatch(/DATABASE_URL/)
        expect(stderr.trim().split("\n")).toHaveLength(1)
      }
    },
    60_000
  )
})
