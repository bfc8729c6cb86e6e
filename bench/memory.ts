/**
 * Figure 5, backfill memory: peak RSS of a backfill of 10,000 vs 100,000 rows, each in its own
 * child process (bench/memory-child.ts), Local provider, 32-d vectors, batch 64, concurrency 4.
 * Peak = max of `process.memoryUsage().rss` polled every 20 ms during the run (the process's
 * `maxRSS` is reported too). The rows are seeded server-side without the trigger, so the backfill
 * itself finds and queues them.
 *
 * One run's peak is noisy: V8 grows its heap in bursts (100,000-row runs on an idle machine peaked
 * at 238, 267 and 340 MB with the same 3 MB left reachable after a full GC), so each size runs
 * --runs times, sizes alternating, and the figure is the ratio of the median peaks. Each child also
 * reports the heap still reachable after a full collection at the end: what a leak would grow.
 *
 *   pnpm bench memory [--sizes 10000,100000] [--runs 3] [--db postgres|pglite]
 */
import { spawn } from "node:child_process"
import * as Path from "node:path"
import {
  createScratchDatabase,
  createScratchDir,
  describeServer,
  figure,
  flagValue,
  fmt,
  goal,
  note,
  repoRoot,
  runIfMain,
  writeResult
} from "./lib.js"

interface ChildResult {
  rows: number
  state: string
  succeeded: number
  seconds: number
  baselineRss: number
  peakRss: number
  maxRssKb: number
  /** Heap reachable after a full GC at the end, minus before the run. */
  retainedHeap: number
  peakHeapTotal: number
}

const child = (rows: number, where: string) =>
  new Promise<ChildResult>((resolve, reject) => {
    const p = spawn(process.execPath, [
      "--expose-gc",
      "--import",
      "tsx",
      "--conditions=source",
      Path.join(repoRoot, "bench/memory-child.ts"),
      String(rows),
      where
    ], {
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

const mb = (bytes: number) => bytes / 1024 / 1024

const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

export const main = async (args: ReadonlyArray<string> = []) => {
  const sizes = flagValue(args, "sizes", "10000,100000").split(",").map(Number)
  const runs = Number(flagValue(args, "runs", "3"))
  const db = flagValue(args, "db", "postgres")
  const label = db === "postgres"
    ? `${describeServer()} (scratch database)`
    : "embedded PGlite on disk (scratch directory)"
  console.log(
    `memory: backfill of ${
      sizes.map((s) => s.toLocaleString("en-US")).join(" vs ")
    } rows, ${runs} runs each (alternating), each in its own process, Local provider 32-d, on ${label}`
  )
  const results = new Map<number, Array<ChildResult>>(sizes.map((n) => [n, []]))
  for (let run = 0; run < runs; run++) {
    for (const n of sizes) {
      let r: ChildResult
      if (db === "postgres") {
        const s = await createScratchDatabase("memory")
        try {
          r = await child(n, s.url)
        } finally {
          await s.drop()
        }
      } else {
        const d = createScratchDir("memory")
        try {
          r = await child(n, d.dir)
        } finally {
          d.drop()
        }
      }
      results.get(n)!.push(r)
      note(
        `run ${run + 1}, ${n.toLocaleString("en-US")} rows: ${r.state}, ${r.succeeded} embedded in ${
          fmt(r.seconds)
        } s; RSS before ${fmt(mb(r.baselineRss))} MB, ` +
          `peak ${fmt(mb(r.peakRss))} MB (heap ${fmt(mb(r.peakHeapTotal))} MB), maxRSS ${
            fmt(r.maxRssKb / 1024)
          } MB; left reachable after GC ${fmt(mb(r.retainedHeap))} MB`
      )
      if (r.state !== "succeeded" || r.succeeded !== n) {
        throw new Error(`backfill of ${n} rows did not finish: ${JSON.stringify(r)}`)
      }
    }
  }
  const small = results.get(sizes[0])!
  const large = results.get(sizes[sizes.length - 1])!
  const peak = (rs: ReadonlyArray<ChildResult>) => median(rs.map((r) => r.peakRss))
  const retained = (rs: ReadonlyArray<ChildResult>) => median(rs.map((r) => r.retainedHeap))
  const ratio = peak(large) / peak(small)
  const worst = Math.max(...large.map((r) => r.peakRss)) / Math.min(...small.map((r) => r.peakRss))
  figure(
    `memory.${db}: median peak RSS backfill ${sizes[sizes.length - 1].toLocaleString("en-US")} ÷ ${
      sizes[0].toLocaleString("en-US")
    } rows = ${fmt(ratio, 3)} ` +
      `(${runs} runs each; worst pair ${fmt(worst, 3)}); ${fmt(mb(peak(large)))} vs ${fmt(mb(peak(small)))} MB; ` +
      `left reachable after a full GC ${fmt(mb(retained(large)), 1)} vs ${fmt(mb(retained(small)), 1)} MB; ${label}; ${
        goal(ratio <= 1.2)
      } (within 20%)`
  )
  const result = {
    database: label,
    dimensions: 32,
    runs: Object.fromEntries([...results].map(([n, rs]) => [n, rs])),
    ratio,
    worst,
    goal: { target: "median peak RSS within 20%", met: ratio <= 1.2 }
  }
  writeResult(`memory${db === "postgres" ? "" : "-pglite"}`, result)
  return result
}

runIfMain(import.meta.url, main)
