/**
 * `pnpm bench` runs every benchmark; `pnpm bench <name> [args]` runs one (its own flags follow).
 * Each prints its figures as lines starting with FIGURE and writes bench/results/<name>.json.
 * Benchmarks never run in `pnpm test` and never fail CI.
 */
import * as Os from "node:os"
import { main as bulk } from "./bulk.js"
import { main as encoding } from "./encoding.js"
import { main as hook } from "./hook.js"
import { fmt } from "./lib.js"
import { main as memory } from "./memory.js"
import { main as outage } from "./outage.js"
import { main as pipeline } from "./pipeline.js"
import { main as search } from "./search.js"
import { main as sets } from "./sets.js"
import { main as text } from "./text.js"
import { main as write } from "./write.js"

/** In run order: quick ones first, the 100,000-row search last. */
const benchmarks: Record<string, (args: ReadonlyArray<string>) => Promise<unknown>> = {
  hook,
  write,
  encoding,
  pipeline,
  memory,
  search,
  text,
  bulk,
  sets,
  outage
}
/**
 * Issue 11's bulk figures (100,000 rows, about 10 minutes), issue 18's sets figures (100,000 rows,
 * four bulk builds and a shadow build: 22 minutes on this 2-core machine under load) and the outage
 * figure run on their own: `pnpm bench bulk`, `pnpm bench sets`, `pnpm bench outage`.
 */
const defaults = ["hook", "write", "encoding", "pipeline", "memory", "search", "text"]

const [name, ...rest] = process.argv.slice(2)
const selected = name === undefined || name === "all" ? defaults : [name]
const unknown = selected.filter((s) => !(s in benchmarks))
if (unknown.length > 0) {
  console.error(`Unknown benchmark ${unknown.join(", ")}; known: ${Object.keys(benchmarks).join(", ")}`)
  process.exit(2)
}

const started = Date.now()
console.log(
  `autoembed benchmarks, ${new Date().toISOString()}, ${Os.cpus().length} CPUs, load average ${
    Os.loadavg().map((x) => x.toFixed(1)).join(" ")
  }, node ${process.version}`
)
let failed = 0
for (const s of selected) {
  const t = Date.now()
  console.log(`\n== ${s} ==`)
  try {
    await benchmarks[s](name === undefined ? [] : rest)
  } catch (e) {
    failed++
    console.error(`benchmark ${s} failed:`, e)
  }
  console.log(`   (${s}: ${fmt((Date.now() - t) / 1000)} s, load average now ${Os.loadavg()[0].toFixed(1)})`)
}
console.log(`\nall done in ${fmt((Date.now() - started) / 1000)} s`)
process.exit(failed > 0 ? 1 : 0)
