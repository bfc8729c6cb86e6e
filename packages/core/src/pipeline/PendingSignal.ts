import { Effect, Queue } from "effect"

/** A row to embed: its source (entity type) and id as text. */
export interface RowKey {
  readonly source: string
  readonly rowId: string
}

/**
 * The fast path from writers to workers in this process: ids to embed first, and a wake-up.
 * Sliding queues: offering never blocks or fails; when full, the oldest hints are dropped and those
 * rows are still pending in the database, where the claimer finds them anyway.
 */
export class PendingSignal extends Effect.Service<PendingSignal>()("@autoembed/core/PendingSignal", {
  effect: Effect.gen(function*() {
    const hints = yield* Queue.sliding<RowKey>(10_000)
    const wakes = yield* Queue.sliding<void>(1)
    return {
      hints,
      wakes,
      /** Never blocks, never fails: the database already holds the pending state. */
      notify: (keys: ReadonlyArray<RowKey>) =>
        Effect.zipRight(Queue.offerAll(hints, keys), Queue.offer(wakes, undefined)).pipe(Effect.asVoid, Effect.ignore),
      wake: Queue.offer(wakes, undefined).pipe(Effect.asVoid)
    }
  })
}) {}
