import { Option, Redacted } from "effect"
import { describe, expect, it } from "vitest"
import { StartupFailure } from "../packages/api/src/Runtime.js"
import { startServer } from "../packages/api/src/Server.js"
import { DatabaseError, EXIT_CODES, exitCodeOf, ProviderStartupError, SourceError } from "../packages/core/src/index.js"

/** One table of exit codes for the server and the CLI (they used to disagree on database errors). */
describe("exit codes", () => {
  it("what the user fixes in settings or the environment is 2, anything else 1", () => {
    expect(exitCodeOf(new DatabaseError({ message: "Cannot connect" }))).toBe(EXIT_CODES.configuration)
    expect(exitCodeOf(new SourceError({ message: "bad source" }))).toBe(EXIT_CODES.configuration)
    expect(exitCodeOf(new ProviderStartupError({ message: "unknown model" }))).toBe(EXIT_CODES.configuration)
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
})
