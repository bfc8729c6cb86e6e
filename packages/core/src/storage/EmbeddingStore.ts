import { Effect } from "effect"
import type { RowKey } from "../pipeline/PendingSignal.js"
import { makeStoreContext } from "./StoreContext.js"
import { makeStoreCounts } from "./StoreCounts.js"
import { makeStoreDiscovery } from "./StoreDiscovery.js"
import { makeStoreEstimate } from "./StoreEstimate.js"
import { makeStoreClaims, makeStoreSettlements } from "./StoreLeases.js"
import { makeStoreLedger } from "./StoreLedger.js"
import { makeStoreVectors } from "./StoreVectors.js"

export type { WorkEstimate } from "./StoreEstimate.js"
export type { LedgerEntry, LedgerLine, LedgerSummary, UsageFigures } from "./StoreLedger.js"
export type { VectorWrite } from "./StoreVectors.js"

/** A queue row this process holds a lease on. `version` and `token` make completion exact. */
export interface ClaimedItem extends RowKey {
  readonly version: number
  readonly token: string
  readonly attempts: number
}

/** A claimed row's current text, with the md5 that guards the vector write. */
export interface LoadedRow {
  readonly rowId: string
  readonly text: string
  readonly hash: string
  /** True when the stored vector already matches this text and model. */
  readonly upToDate: boolean
}

export interface SourceCounts {
  readonly total: number
  readonly embedded: number
  /** No vector yet (not failed). */
  readonly missing: number
  /** A vector of another model, or of content that has changed since (not failed). */
  readonly stale: number
  readonly failed: number
  /** Queue rows waiting or in flight. */
  readonly pending: number
  readonly inFlight: number
  readonly oldestPendingSeconds: number | null
}

/**
 * The durable pending state and the vector writes. Every method is one short statement or
 * transaction; the provider is never called while a transaction is open. Rows are embedded,
 * counted and compared with the `ActiveModel`'s key, so callers never pass a model.
 */
export class EmbeddingStore extends Effect.Service<EmbeddingStore>()("@autoembed/core/EmbeddingStore", {
  effect: Effect.map(makeStoreContext, (ctx) =>
    ({
      /** The model key every write records and every count compares. */
      model: ctx.model,
      ...makeStoreClaims(ctx),
      ...makeStoreSettlements(ctx),
      ...makeStoreVectors(ctx),
      ...makeStoreDiscovery(ctx),
      ...makeStoreCounts(ctx),
      ...makeStoreLedger(ctx),
      ...makeStoreEstimate(ctx)
    }) as const)
}) {}
