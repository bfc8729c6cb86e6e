/**
 * Child process of the memory benchmark: one backfill of N rows in a fresh process, so peak RSS
 * belongs to that backfill alone. Prints one JSON line. Not run directly by `pnpm bench`.
 *
 *   node --import tsx --conditions=source bench/memory-child.ts <rows> <postgres url | pglite dir>
 */
import { Backfill, VectorIndex } from "@autoembed/core"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer, Option, Redacted } from "effect"
import { storeLayer } from "./lib.js"

const DIMS = 32
const rows = Number(process.argv[2])
const where = process.argv[3]
const config = where.startsWith("postgres")
  ? { databaseUrl: Option.some(Redacted.make(where)) }
  : { databaseUrl: Option.none<Redacted.Redacted<string>>(), dataDir: where }

// bulkThreshold out of reach: both sizes take the same (incremental) path, so only size differs.
const layer = Backfill.Default.pipe(
  Layer.provideMerge(VectorIndex.Default),
  Layer.provideMerge(
    storeLayer({ ...config, dimensions: DIMS, batchSize: 64, concurrency: 4, bulkThreshold: 1_000_000_000 })
  )
)

const program = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const backfill = yield* Backfill
  // Rows that never went through the trigger (a restore, a table from before autoembed).
  yield* sql.withTransaction(Effect.gen(function*() {
    yield* sql`SET LOCAL session_replication_role = replica`
    yield* sql`INSERT INTO messages (content)
      SELECT 'archived chat message ' || g || ' about deploys and rollbacks' FROM generate_series(1, ${rows}) g`
  }))
  // The server-side HNSW index does not change what this process holds; without it the run is
  // fast enough for the time budget (the write path has its own figure).
  yield* sql`DROP INDEX IF EXISTS autoembed_messages_hnsw`
  yield* sql`VACUUM ANALYZE messages`
  global.gc?.()
  const baselineHeap = process.memoryUsage().heapUsed
  const baseline = process.memoryUsage().rss
  let peak = baseline
  let peakHeapTotal = 0
  const timer = setInterval(() => {
    const m = process.memoryUsage()
    peak = Math.max(peak, m.rss)
    peakHeapTotal = Math.max(peakHeapTotal, m.heapTotal)
  }, 20)
  const t = performance.now()
  const job = yield* backfill.run({ entityTypes: ["messages"] })
  const seconds = (performance.now() - t) / 1000
  clearInterval(timer)
  peak = Math.max(peak, process.memoryUsage().rss)
  // What the run left behind: heap still reachable after a full collection (a leak grows with rows).
  global.gc?.()
  const retainedHeap = process.memoryUsage().heapUsed - baselineHeap
  return {
    rows,
    retainedHeap,
    peakHeapTotal,
    state: job.state,
    succeeded: job.succeeded,
    seconds,
    baselineRss: baseline,
    peakRss: peak,
    maxRssKb: process.resourceUsage().maxRSS
  }
})

Effect.runPromise(Effect.scoped(Effect.provide(program, layer))).then(
  (r) => {
    console.log(JSON.stringify(r))
    process.exit(0)
  },
  (e) => {
    console.error(e)
    process.exit(1)
  }
)
