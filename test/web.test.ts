import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { scratchDatabase } from "./support/ApiServer.js"
import { serverUrl } from "./support/TestDatabase.js"

const CHROMIUM = "/usr/bin/chromium"
const hasChromium = existsSync(CHROMIUM)
if (!hasChromium) {
  console.warn(`web.test.ts skipped: no Chromium at ${CHROMIUM} (bash scripts/install-chromium.sh installs it)`)
}

/** `pnpm start` as a user runs it, on a random port with a fresh database and the sample data. */
const startLikePnpmStart = async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "autoembed-web-"))
  const scratch = serverUrl() ? await scratchDatabase() : undefined
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: "0",
    HOST: "127.0.0.1",
    EMBEDDING_PROVIDER: "local",
    AUTOEMBED_DATA_DIR: join(dataDir, "pglite"),
    AUTOEMBED_SAMPLE_DATA: "true",
    AUTOEMBED_LOG_LEVEL: "info"
  }
  if (scratch) env.DATABASE_URL = scratch.url
  else delete env.DATABASE_URL
  const child = spawn(process.execPath, ["--import", "tsx", "--conditions=source", "packages/api/src/main.ts"], {
    env,
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${output}`)), 90_000)
    child.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString()
      const m = /"message":"autoembed listening on (http:\/\/[^"]+)"/.exec(output)
      if (m) {
        clearTimeout(timer)
        resolve(m[1])
      }
    })
    child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()))
    child.on("exit", (code) => reject(new Error(`server exited with ${code}:\n${output}`)))
  })
  const stop = async () => {
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
    child.kill("SIGTERM")
    const code = await exited
    await scratch?.drop()
    rmSync(dataDir, { recursive: true, force: true })
    return code
  }
  return { url, child, stop, output: () => output }
}

describe.skipIf(!hasChromium)("web page in headless Chromium", () => {
  let server: Awaited<ReturnType<typeof startLikePnpmStart>>
  let child: ChildProcess
  beforeAll(async () => {
    server = await startLikePnpmStart()
    child = server.child
  })
  afterAll(async () => {
    if (child && child.exitCode === null) await server.stop()
  })

  it("searches, shows status, runs a backfill to 100%, and talks only to its own origin", async () => {
    const { chromium } = await import("playwright-core")
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    })
    try {
      const page = await browser.newPage({ viewport: { width: 1200, height: 1000 } })
      const requests: Array<string> = []
      page.on("request", (r) => requests.push(r.url()))
      const consoleErrors: Array<string> = []
      page.on("console", (m) => {
        if (m.type() === "error") consoleErrors.push(m.text())
      })

      await page.goto(server.url + "/")
      // The status panel fills itself from the sample data.
      await expect.poll(async () => page.locator("#sources .source").count(), { timeout: 20_000 }).toBe(2)
      await expect.poll(async () => page.locator("#provider").textContent()).toMatch(/Provider local/)
      // The embedding-set table: each source's configured set, active.
      await expect.poll(async () => page.locator("#sets tbody tr").count()).toBe(2)
      expect(await page.locator("#sets tbody tr[data-phase=active]").count()).toBe(2)

      // Keyboard only: focus the search box, type, press Enter.
      await page.getByLabel("Query").focus()
      await page.keyboard.type("checkout returned 502 after a release")
      await page.keyboard.press("Enter")
      await page.locator("#results li").first().waitFor({ timeout: 20_000 })
      expect(await page.locator("#results li").count()).toBeGreaterThan(0)
      expect(await page.locator("#results li .score").first().textContent()).toMatch(/^score \d\.\d{3}$/)
      expect(await page.locator("#search-summary").textContent()).toMatch(/results? for/)

      // Only atoms, vector mode.
      await page.getByLabel("Mode").selectOption("vector")
      await page.getByLabel("Type").selectOption("atoms")
      await page.getByRole("button", { name: "Search", exact: true }).click()
      await expect.poll(async () => page.locator("#search-summary").textContent()).toMatch(/\(vector,/)
      const badges = await page.locator("#results .badge").allTextContents()
      expect(badges.length).toBeGreaterThan(0)
      expect(new Set(badges)).toEqual(new Set(["atoms"]))

      // Backfill: the progress bar reaches 100%.
      await page.getByRole("button", { name: "Start backfill" }).click()
      await expect.poll(async () => page.locator("#backfill-text").getAttribute("data-state"), { timeout: 60_000 })
        .toBe("succeeded")
      expect(await page.locator("#backfill-text").getAttribute("data-percent")).toBe("100")
      expect(await page.locator("#backfill-bar").evaluate((el) => (el as unknown as { value: number }).value)).toBe(100)

      // Phone width stays readable: nothing wider than the viewport.
      await page.setViewportSize({ width: 375, height: 900 })
      const overflow = await page.evaluate<number>("document.documentElement.scrollWidth - window.innerWidth")
      expect(overflow).toBeLessThanOrEqual(0)
      await page.setViewportSize({ width: 1200, height: 1000 })

      mkdirSync("test-output", { recursive: true })
      await page.screenshot({ path: "test-output/web.png", fullPage: true })

      const origin = new URL(server.url).origin
      expect(requests.length).toBeGreaterThan(3)
      expect(requests.filter((u) => new URL(u).origin !== origin)).toEqual([])
      expect(consoleErrors).toEqual([])
    } finally {
      await browser.close()
    }
  })

  it("stops gracefully on SIGTERM", async () => {
    const code = await server.stop()
    expect(code).toBe(0)
    expect(server.output()).toMatch(/SIGTERM: shutting down/)
    expect(server.output()).toMatch(/autoembed stopped/)
  })
})
