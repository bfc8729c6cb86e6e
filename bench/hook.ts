/**
 * Figure 3, hook overhead: `Extraction.persist` (3 new atoms + 2 existing message ids, one
 * transaction) with the extraction hook vs the same persistence whose `PendingSignal` is a no-op
 * (the hook is `signal.notify`, so the hook is the only difference). Iterations alternate between
 * the two, in rounds; reported: per-round p50/p99 of each, their difference, and the hook call
 * timed alone (the exact code added after the commit).
 *
 *   pnpm bench hook [--rounds 3] [--iterations 200]
 */
import { Extraction, PendingSignal } from "@autoembed/core"
import * as SqlClient from "@effect/sql/SqlClient"
import { Context, Effect, Layer, Queue } from "effect"
import {
  elapsedMs,
  figure,
  fmt,
  fmtSummary,
  goal,
  note,
  now,
  numberFlag,
  percentile,
  runIfMain,
  scratchTarget,
  storeLayer,
  summarize,
  writeResult
} from "./lib.js"

/** A PendingSignal that does nothing: persistence without the hook. */
const noopSignal = Layer.effect(
  PendingSignal,
  Effect.gen(function*() {
    const hints = yield* Queue.sliding<{ source: string; rowId: string }>(1)
    const wakes = yield* Queue.sliding<void>(1)
    return PendingSignal.make({ hints, wakes, notify: () => Effect.void, wake: Effect.void })
  })
)

export const main = async (args: ReadonlyArray<string> = []) => {
  const rounds = numberFlag(args, "rounds", 3)
  const iterations = numberFlag(args, "iterations", 200)
  const target = await scratchTarget("postgres", "hook")
  console.log(
    `hook: Extraction.persist of 3 atoms + 2 message ids, ${rounds} rounds × ${iterations} iterations per variant ` +
      `(alternating), on ${target.label}`
  )
  try {
    const program = Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const withHook = yield* Extraction
      const withoutHook = Context.get(
        yield* Layer.build(Layer.fresh(Extraction.Default).pipe(Layer.provide(noopSignal))),
        Extraction
      )
      const msgs = yield* sql<
        { id: number }
      >`INSERT INTO messages (content) VALUES ('hook benchmark message one'), ('hook benchmark message two')
        RETURNING id`
      const messageIds = msgs.map((m) => m.id)
      let seq = 0
      const input = () => {
        seq++
        return {
          messageIds: messageIds,
          atoms: [0, 1, 2].map((k) => ({
            type: "insight",
            title: `Hook benchmark atom ${seq}.${k}`,
            content: `Knowledge ${seq}.${k}: deploys need a rollback plan.`,
            topic: "benchmarks"
          }))
        }
      }
      const timePersist = (ex: Extraction) =>
        Effect.gen(function*() {
          const i = input()
          const t = now()
          yield* ex.persist(i)
          return elapsedMs(t)
        })
      // Warm-up: connections, plans, JIT of both paths.
      for (let i = 0; i < 30; i++) {
        yield* timePersist(withHook)
        yield* timePersist(withoutHook)
      }
      const perRound: Array<{ withP50: number; withP99: number; withoutP50: number; withoutP99: number }> = []
      for (let r = 0; r < rounds; r++) {
        const a: Array<number> = []
        const b: Array<number> = []
        for (let i = 0; i < iterations; i++) {
          if (i % 2 === 0) {
            a.push(yield* timePersist(withHook))
            b.push(yield* timePersist(withoutHook))
          } else {
            b.push(yield* timePersist(withoutHook))
            a.push(yield* timePersist(withHook))
          }
        }
        const row = {
          withP50: percentile(a, 50),
          withP99: percentile(a, 99),
          withoutP50: percentile(b, 50),
          withoutP99: percentile(b, 99)
        }
        perRound.push(row)
        note(
          `round ${r + 1}: with hook p50 ${fmt(row.withP50)} ms p99 ${fmt(row.withP99)} ms; without p50 ${
            fmt(row.withoutP50)
          } ms p99 ${fmt(row.withoutP99)} ms`
        )
      }
      // The hook alone, on the real signal (its sliding queue full, as when no worker drains it).
      const hookTimes: Array<number> = []
      for (let i = 0; i < 20_000; i++) {
        const t = now()
        yield* withHook.afterExtraction({ atomIds: [i, i + 1, i + 2], messageIds })
        hookTimes.push(elapsedMs(t))
      }
      return { perRound, hookTimes: hookTimes.slice(1000) }
    })
    const { perRound, hookTimes } = await Effect.runPromise(
      Effect.scoped(Effect.provide(program, storeLayer({ ...target.config, dimensions: 32 })))
    )
    const addedP50 = summarize(perRound.map((r) => r.withP50 - r.withoutP50))
    const addedP99 = summarize(perRound.map((r) => r.withP99 - r.withoutP99))
    const relP50 = summarize(perRound.map((r) => r.withP50 / r.withoutP50))
    const hookP50 = percentile(hookTimes, 50)
    const hookP99 = percentile(hookTimes, 99)
    const withP50 = summarize(perRound.map((r) => r.withP50))
    const withoutP50 = summarize(perRound.map((r) => r.withoutP50))
    const withP99 = summarize(perRound.map((r) => r.withP99))
    const withoutP99 = summarize(perRound.map((r) => r.withoutP99))
    figure(
      `hook.persist: persist p50 with hook ÷ without = ${fmtSummary(relP50, 3)}; added p50 ${
        fmtSummary(addedP50, 3, " ms")
      }, added p99 ${fmtSummary(addedP99, 3, " ms")} ` +
        `(p50 ${fmt(withP50.median)} vs ${fmt(withoutP50.median)} ms, p99 ${fmt(withP99.median)} vs ${
          fmt(withoutP99.median)
        } ms); postgres`
    )
    figure(
      `hook.alone: the hook call (notify of 5 ids) p50 ${fmt(hookP50 * 1000, 1)} µs, p99 ${
        fmt(hookP99 * 1000, 1)
      } µs = ${fmt((hookP99 / withoutP50.median) * 100, 3)}% of persist p50; ` +
        `19,000 calls; ${goal(hookP99 < 1)} (p99 < 1 ms)`
    )
    const result = {
      database: target.label,
      rounds,
      iterations,
      perRound,
      added: { p50: addedP50, p99: addedP99, ratioP50: relP50 },
      hookAlone: { calls: hookTimes.length, p50Ms: hookP50, p99Ms: hookP99, maxMs: Math.max(...hookTimes) },
      goal: { target: "added p99 < 1 ms", met: hookP99 < 1 }
    }
    writeResult("hook", result)
    return result
  } finally {
    await target.drop()
  }
}

runIfMain(import.meta.url, main)
