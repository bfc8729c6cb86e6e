/**
 * Diagnostic for figure 2: where the pipeline's time goes. Runs the pipeline once (zero-latency
 * fake-free Local provider) with every EmbeddingStore method wrapped in a timer, and prints the
 * total wall time spent in each (calls overlap: the sum can exceed the elapsed time).
 *
 *   node --import tsx --conditions=source bench/pipeline-profile.ts [--rows 5000] [--db postgres|pglite]
 */
import { EmbeddingStore, makeEmbeddingPipeline } from "@autoembed/core"
import * as SqlClient from "@effect/sql/SqlClient"
import { Deferred, Effect, Layer } from "effect"
import { type DbKind, elapsedMs, fmt, isMain, now, scratchTarget, storeLayer } from "./lib.js"

const DIMS = 64

export const profile = async (rows: number, db: DbKind) => {
  const target = await scratchTarget(db, "profile")
  const timings = new Map<string, { calls: number; ms: number }>()
  const timed = <A, E, R>(name: string, eff: Effect.Effect<A, E, R>) =>
    Effect.suspend(() => {
      const t = now()
      return Effect.ensuring(
        eff,
        Effect.sync(() => {
          const e = timings.get(name) ?? { calls: 0, ms: 0 }
          e.calls++
          e.ms += elapsedMs(t)
          timings.set(name, e)
        })
      )
    })
  const wrapped = Layer.effect(
    EmbeddingStore,
    Effect.map(EmbeddingStore, (s) => {
      const out: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(s)) {
        out[k] = typeof v === "function" ? (...a: Array<unknown>) => timed(k, (v as any)(...a)) : v
      }
      return EmbeddingStore.make(out as any)
    })
  )
  const base = storeLayer({ ...target.config, dimensions: DIMS, batchSize: 64, concurrency: 4 })
  const layer = Layer.provideMerge(wrapped, base)
  try {
    await Effect.runPromise(Effect.scoped(Effect.provide(
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`INSERT INTO messages (content)
          SELECT 'pipeline message ' || g || ' about deploys and queues' FROM generate_series(1, ${rows}) g`
        yield* sql`VACUUM ANALYZE messages`
        const done = yield* Deferred.make<void>()
        let embedded = 0
        const t = now()
        yield* Effect.scoped(Effect.gen(function*() {
          const p = yield* makeEmbeddingPipeline({
            sources: ["messages"],
            sweep: false,
            onBatch: (o) =>
              Effect.suspend(() => {
                embedded += o.embedded
                return embedded >= rows ? Deferred.succeed(done, undefined) : Effect.void
              })
          })
          yield* p.wake
          yield* Deferred.await(done)
        }))
        const ms = elapsedMs(t)
        console.log(`${db}: ${rows} rows in ${fmt(ms / 1000)} s = ${fmt(rows / (ms / 1000))} rows/s`)
        for (const [k, v] of [...timings].sort((a, b) => b[1].ms - a[1].ms)) {
          console.log(
            `  ${k.padEnd(12)} ${String(v.calls).padStart(5)} calls  ${fmt(v.ms / 1000)} s total  ${
              fmt(v.ms / v.calls)
            } ms/call`
          )
        }
      }),
      layer
    )))
  } finally {
    await target.drop()
  }
}

if (isMain(import.meta.url)) {
  const args = process.argv.slice(2)
  const get = (n: string, d: string) => (args.indexOf(`--${n}`) >= 0 ? args[args.indexOf(`--${n}`) + 1] : d)
  profile(Number(get("rows", "5000")), get("db", "postgres") as DbKind).catch((e) => {
    console.error(e)
    process.exit(1)
  })
}
