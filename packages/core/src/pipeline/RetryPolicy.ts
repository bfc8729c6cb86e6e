import { Duration, Schedule } from "effect"
import { isRetryable, type ProviderError } from "../providers/EmbeddingProvider.js"

/** A server's Retry-After is honoured, but never longer than this. */
export const MAX_RETRY_AFTER = Duration.minutes(5)

/**
 * Retries of one provider call: exponential backoff from `baseMs` with jitter, each delay capped at
 * `maxMs`, at most `retries` times, only for Transient and RateLimited errors. A `Retry-After` from
 * the server wins when it is longer than the backoff (the two schedules are intersected: max delay).
 */
export const providerRetrySchedule = (
  options: { readonly baseMs: number; readonly maxMs: number; readonly retries: number }
) => {
  const backoff = Schedule.exponential(Duration.millis(options.baseMs), 2).pipe(
    Schedule.jittered,
    Schedule.modifyDelay((_, d) => Duration.min(d, Duration.millis(options.maxMs))),
    Schedule.intersect(Schedule.recurs(options.retries))
  )
  const serverDelay = Schedule.identity<ProviderError>().pipe(
    Schedule.whileInput(isRetryable),
    Schedule.addDelay((e) => Duration.min(Duration.millis(e.retryAfterMs ?? 0), MAX_RETRY_AFTER))
  )
  return Schedule.intersect(serverDelay, backoff)
}
