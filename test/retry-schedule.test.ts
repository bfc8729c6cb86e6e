import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Ref, TestClock } from "effect"
import { providerRetrySchedule } from "../packages/core/src/pipeline/RetryPolicy.js"
import { ProviderError } from "../packages/core/src/providers/EmbeddingProvider.js"

const failing = (attempts: Ref.Ref<number>, errors: ReadonlyArray<ProviderError>) =>
  Effect.gen(function*() {
    const n = yield* Ref.getAndUpdate(attempts, (x) => x + 1)
    if (n < errors.length) return yield* Effect.fail(errors[n])
    return "ok"
  })

const err = (reason: ProviderError["reason"], retryAfterMs?: number) =>
  new ProviderError({ reason, message: reason, provider: "test", retryAfterMs })

describe("provider retry schedule (TestClock)", () => {
  it.effect("honours Retry-After: no retry before the server's delay", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const policy = providerRetrySchedule({ baseMs: 100, maxMs: 1000, retries: 5 })
      const fiber = yield* Effect.fork(Effect.retry(failing(attempts, [err("RateLimited", 5000)]), policy))
      yield* TestClock.adjust(Duration.millis(10))
      expect(yield* Ref.get(attempts)).toBe(1)
      yield* TestClock.adjust(Duration.millis(4900))
      expect(yield* Ref.get(attempts)).toBe(1)
      yield* TestClock.adjust(Duration.millis(200))
      expect(yield* Fiber.join(fiber)).toBe("ok")
      expect(yield* Ref.get(attempts)).toBe(2)
    }))

  it.effect("transient errors back off exponentially, capped, and stop after the retry limit", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const policy = providerRetrySchedule({ baseMs: 100, maxMs: 400, retries: 3 })
      const errors = Array.from({ length: 10 }, () => err("Transient"))
      const fiber = yield* Effect.fork(Effect.either(Effect.retry(failing(attempts, errors), policy)))
      // Jitter keeps each delay within [0.8, 1.2] of 100, 200, 400 (capped) ms.
      yield* TestClock.adjust(Duration.millis(79))
      expect(yield* Ref.get(attempts)).toBe(1)
      yield* TestClock.adjust(Duration.millis(41))
      expect(yield* Ref.get(attempts)).toBe(2)
      yield* TestClock.adjust(Duration.millis(2000))
      const result = yield* Fiber.join(fiber)
      expect(result._tag).toBe("Left")
      // One try plus three retries, then the error surfaces.
      expect(yield* Ref.get(attempts)).toBe(4)
    }))

  it.effect("permanent errors are not retried", () =>
    Effect.gen(function*() {
      for (const reason of ["InvalidInput", "Auth", "ModelNotFound", "BadResponse"] as const) {
        const attempts = yield* Ref.make(0)
        const policy = providerRetrySchedule({ baseMs: 100, maxMs: 400, retries: 5 })
        const fiber = yield* Effect.fork(
          Effect.either(Effect.retry(failing(attempts, [err(reason), err(reason)]), policy))
        )
        yield* TestClock.adjust(Duration.seconds(10))
        expect((yield* Fiber.join(fiber))._tag).toBe("Left")
        expect(yield* Ref.get(attempts)).toBe(1)
      }
    }))

  it.effect("a huge Retry-After is capped at five minutes", () =>
    Effect.gen(function*() {
      const attempts = yield* Ref.make(0)
      const policy = providerRetrySchedule({ baseMs: 100, maxMs: 400, retries: 5 })
      const fiber = yield* Effect.fork(Effect.retry(failing(attempts, [err("RateLimited", 3_600_000)]), policy))
      yield* TestClock.adjust(Duration.minutes(5))
      yield* TestClock.adjust(Duration.millis(1))
      expect(yield* Fiber.join(fiber)).toBe("ok")
    }))
})
