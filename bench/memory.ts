/**
 * Figure 5, backfill memory: peak RSS of a backfill of 10,000 vs 100,000 rows, each in its own
 * child process (bench/memory-child.ts), Local provider, 32-d vectors, batch 64, concurrency 4.
 * Peak = max of `process.memoryUsage().rss` polled every 20 ms during the run (the process's
 * `maxRSS` is reported too). The rows are seeded server-side without the trigger, so the backfill
 * itself finds and queues them.
 *
 *   pnpm bench memory [--sizes 10000,100000] [--db postgres|pglite]
 */
import { spawn } from "node:child_process"
import * as Path from "node:path"
import { createScratchDir, createScratchDatabase, describeServer, figure, fmt, goal, runIfMain, note, repoRoot, writeResult } from "./lib.js"

interface ChildResult {
  rows: number
  state: string
  succeeded: number
  seconds: number
  baselineRss: number
  peakRss: number
  maxRssKb: number
}

const child = (rows: number, where: string) =>
  new Promise<ChildResult>((resolve, reject) => {
    const p = spawn(process.execPath, ["--expose-gc", "--import", "tsx", "--conditions=source", Path.join(repoRoot, "bench/memory-child.ts"), String(rows), where], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "inherit"]
    })
    let out = ""
    p.stdout!.on("data", (d: Buffer) => (out += d.toString()))
    p.on("exit", (code) => {
      const line = out.trim().split("\n").pop() ?? ""
      if (code !== 0) return reject(new Error(`memory child exited with ${code}: ${out}`))
      resolve(JSON.parse(line) as ChildResult)
    })
  })

const arg = (args: ReadonlyArray<string>, name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback
}

const mb = (bytes: number) => bytes / 1024 / 1024

export const main = async (args: ReadonlyArray<string> = []) => {
  const sizes = arg(args, "sizes", "10000,100000").split(",").map(Number)
  const db = arg(args, "db", "postgres")
  const label = db === "postgres" ? `${describeServer()} (scratch database)` : "embedded PGlite on disk (scratch directory)"
  console.log(`memory: backfill of ${sizes.map((s) => s.toLocaleString("en-US")).join(" vs ")} rows, 1 run each in its own process, Local provider 32-d, on ${label}`)
  const results: Array<ChildResult> = []
  for (const n of sizes) {
    if (db === "postgres") {
      const s = await createScratchDatabase("memory")
      try {
        results.push(await child(n, s.url))
      } finally {
        await s.drop()
      }
    } else {
      const d = createScratchDir("memory")
      try {
        results.push(await child(n, d.dir))
      } finally {
        d.drop()
      }
    }
    const r = results[results.length - 1]
    note(`${n.toLocaleString("en-US")} rows: ${r.state}, ${r.succeeded} embedded in ${fmt(r.seconds)} s; RSS before ${fmt(mb(r.baselineRss))} MB, peak ${fmt(mb(r.peakRss))} MB, maxRSS ${fmt(r.maxRssKb / 1024)} MB`)
    if (r.state !== "succeeded" || r.succeeded !== n) throw new Error(`backfill of ${n} rows did not finish: ${JSON.stringify(r)}`)
  }
  const small = results[0]
  const large = results[results.length - 1]
  const ratio = large.peakRss / small.peakRss
  const growthRatio = (large.peakRss - large.baselineRss) / Math.max(1, small.peakRss - small.baselineRss)
  figure(
    `memory.${db}: peak RSS backfill ${large.rows.toLocaleString("en-US")} ÷ ${small.rows.toLocaleString("en-US")} rows = ${fmt(ratio, 3)} (1 run each); ` +
      `${fmt(mb(large.peakRss))} vs ${fmt(mb(small.peakRss))} MB (growth during the run ${fmt(mb(large.peakRss - large.baselineRss))} vs ${fmt(mb(small.peakRss - small.baselineRss))} MB); ` +
      `${label}; ${goal(ratio <= 1.2)} (within 20%)`
  )
  const result = { database: label, dimensions: 32, runs: results, ratio, growthRatio, goal: { target: "peak RSS within 20%", met: ratio <= 1.2 } }
  writeResult(`memory${db === "postgres" ? "" : "-pglite"}`, result)
  return result
}

runIfMain(import.meta.url, main)
