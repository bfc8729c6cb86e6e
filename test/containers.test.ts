import { describe, expect, it } from "vitest"
import { startContainerTier } from "./support/Containers.js"

/** The testcontainers tier is opt-in and never fails a machine without a container runtime. */
describe("the testcontainers tier", () => {
  it("is off unless AUTOEMBED_TEST_CONTAINERS=1", async () => {
    expect(await startContainerTier({})).toBeUndefined()
  })

  it("DATABASE_URL wins over a container", async () => {
    const tier = await startContainerTier({ AUTOEMBED_TEST_CONTAINERS: "1", DATABASE_URL: "postgres://x@127.0.0.1/y" })
    expect(tier?.url).toBe("postgres://x@127.0.0.1/y")
  })

  it("without a container runtime: one line, no URL, the embedded tier runs", async () => {
    const tier = await startContainerTier({ AUTOEMBED_TEST_CONTAINERS: "1" })
    expect(tier).toBeDefined()
    if (tier!.url !== undefined) {
      // This machine has a container runtime after all: the tier came up; stop it again.
      await tier!.stop()
      return
    }
    expect(tier!.line).toMatch(
      /^autoembed tests: no container runtime \(.+\); the PostgreSQL tier is skipped, the embedded tier runs$/
    )
    expect(tier!.line).not.toMatch(/\n/)
  }, 60_000)
})
