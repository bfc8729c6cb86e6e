import { Effect, Option } from "effect"
import { AutoEmbedConfig } from "../config/AutoEmbedConfig.js"
import { EmbeddingProvider } from "../providers/EmbeddingProvider.js"
import { EmbeddingSets } from "../sets/EmbeddingSets.js"
import type { SetReport } from "../sets/SetSchemas.js"
import { type Source, Sources } from "../sources/Sources.js"
import { Database } from "../storage/Database.js"
import { EmbeddingStore, type LedgerSummary, type SourceCounts } from "../storage/EmbeddingStore.js"
import { type IndexInfo, VectorIndex } from "../storage/VectorIndex.js"
import { Fleet, type FleetThroughput, type FleetWorker, type Freshness } from "./Fleet.js"
import { PipelineMetrics } from "./PipelineMetrics.js"
import { type OpenCircuit, ProviderCircuit } from "./ProviderCircuit.js"
import { WorkerStatus } from "./WorkerStatus.js"

export interface IndexState {
  readonly name: string
  /** "valid", "building" (not yet valid, e.g. a bulk rebuild in progress) or "missing" (search scans exactly). */
  readonly state: "valid" | "building" | "missing"
  readonly definition: string | null
  /** Built with the configured kind, m and ef_construction. */
  readonly matchesConfig: boolean
  /** Set while a bulk load holds the index dropped. */
  readonly bulk: string | null
}

export interface StatusReport {
  readonly sources: Record<string, {
    readonly total: number
    readonly embedded: number
    readonly pending: number
    readonly missing: number
    readonly stale: number
    readonly failed: number
    readonly inFlight: number
    readonly oldestPendingSeconds: number | null
    readonly index: IndexState
  }>
  /**
   * Every embedding set of every source (model, dimensions, counts, index, size, shadow-backfill
   * progress, which one is active); `sources` above describes each source's configured set.
   */
  readonly sets: ReadonlyArray<SetReport>
  readonly queue: {
    readonly running: boolean
    readonly workerId: string | null
    readonly depth: number
    readonly capacity: number
    readonly inFlight: number
    readonly concurrency: number
    readonly batchSize: number
    readonly pausedForMs: number
    readonly lastError: string | null
    /**
     * Notifications wake the workers at once; false while LISTEN reconnects (they poll meanwhile) or without
     * workers.
     */
    readonly listening: boolean
  }
  /** Rows embedded by every worker on the database (read from the bookkeeping, not this process). */
  readonly throughput: FleetThroughput
  /** The live worker processes on the database, from their heartbeats. */
  readonly workers: ReadonlyArray<FleetWorker>
  /** Per set key: seconds from a row's change to its vector, over the last 5 minutes' writes. */
  readonly freshness: Readonly<Record<string, Freshness>>
  /** Models whose circuit is open: no worker calls them until the next probe. */
  readonly circuits: ReadonlyArray<OpenCircuit>
  readonly totals: {
    readonly embedded: number
    readonly failed: number
    readonly skipped: number
    readonly batches: number
    readonly providerErrors: Readonly<Record<string, number>>
  }
  /**
   * Input tokens sent to the providers and what they cost, from the ledger in the database (so
   * every worker's calls, whichever process answers): the current clock hour, the last 24 hours
   * (whole hours), and in total; per source, set, model and kind (document or query).
   */
  readonly usage: LedgerSummary
  readonly provider: {
    readonly provider: string
    readonly model: string
    readonly dimensions: number
    readonly modelKey: string
  }
  readonly database: { readonly kind: string; readonly description: string }
  readonly indexSettings: {
    readonly kind: string
    readonly m: number
    readonly efConstruction: number
    readonly efSearch: number
  }
  readonly recentErrors: ReadonlyArray<
    {
      readonly type: string
      readonly id: string
      readonly error: string
      readonly at: string
      readonly attempts: number
      readonly failed: boolean
    }
  >
  readonly notes: ReadonlyArray<string>
  readonly generatedAt: string
}

/** Each source's counts and index state, with a note for whatever needs an operator. */
const sourcesSection = (
  all: ReadonlyArray<Source>,
  counts: Record<string, SourceCounts>,
  indexes: ReadonlyMap<string, IndexInfo>
) => {
  const notes: Array<string> = []
  const sourcesReport: StatusReport["sources"] = {}
  for (const s of all) {
    const c = counts[s.name]
    const idx = indexes.get(s.name)!
    const index: IndexState = {
      name: s.index.name,
      state: idx.exists ? (idx.valid ? "valid" : "building") : "missing",
      definition: idx.definition,
      matchesConfig: idx.matchesConfig,
      bulk: idx.bulkMark
    }
    if (idx.bulkMark) {
      notes.push(
        `${s.name}: bulk load (${idx.bulkMark}); search scans exactly until the index is built at its end ` +
          `(or \`pnpm cli reindex\`)`
      )
    } else if (index.state !== "valid") {
      notes.push(
        `${s.name}: HNSW index ${index.state}; search scans exactly until it is rebuilt (\`pnpm cli reindex\`)`
      )
    } else if (!idx.matchesConfig) {
      notes.push(
        `${s.name}: the HNSW index differs from the configured settings; \`pnpm cli reindex\` applies them`
      )
    }
    sourcesReport[s.name] = {
      total: c.total,
      embedded: c.embedded,
      pending: c.pending,
      missing: c.missing,
      stale: c.stale,
      failed: c.failed,
      inFlight: c.inFlight,
      oldestPendingSeconds: c.oldestPendingSeconds,
      index
    }
    if (c.failed > 0) notes.push(`${s.name}: ${c.failed} failed rows; \`pnpm cli retry-failed\` requeues them`)
  }
  return { notes, sourcesReport }
}

/** A note for each set that is being filled beside the active one, and for a missing or invalid index of one. */
const setNotes = (sets: ReadonlyArray<SetReport>) =>
  sets.filter((s) => !s.configured).flatMap((s) => {
    const notes: Array<string> = []
    if (s.phase === "building") {
      notes.push(
        `${s.source}: set ${s.name} is being filled (${Math.floor(s.progress * 100)}%, ` +
          `${s.missing + s.stale} rows to go); search keeps using the active set`
      )
    }
    if (s.index.bulkMark !== null) {
      notes.push(
        `${s.source}: set ${s.name} is under a bulk load (${s.index.bulkMark}); search on it scans exactly until ` +
          `a backfill of it builds its index (\`pnpm cli backfill --type ${s.source}\`)`
      )
    } else if (s.total > 0 && s.embedded > 0 && !(s.index.exists && s.index.valid)) {
      notes.push(`${s.source}: set ${s.name} has no valid HNSW index; search on it scans exactly`)
    }
    return notes
  })

/** A note for each model the ledger has tokens of but no price for (its cost shows as 0). */
const priceNotes = (usage: LedgerSummary) =>
  [...new Set(usage.lines.filter((l) => l.usdPerMillionTokens === null).map((l) => l.model))].map((model) =>
    `no price known for ${model}: its cost shows as 0; set prices."${model}" (USD per 1M input tokens) ` +
    `in the configuration file`
  )

/** What an operator needs to see: per-source state from the database, this process's queue and throughput. */
export class Status extends Effect.Service<Status>()("@autoembed/core/Status", {
  effect: Effect.gen(function*() {
    const store = yield* EmbeddingStore
    const sources = yield* Sources
    const provider = yield* EmbeddingProvider
    const metrics = yield* PipelineMetrics
    const database = yield* Database
    const config = yield* AutoEmbedConfig
    const vectorIndex = yield* VectorIndex
    const workers = yield* WorkerStatus
    const embeddingSets = yield* EmbeddingSets
    const fleet = yield* Fleet
    const circuit = yield* ProviderCircuit
    const modelKey = store.model

    const report = Effect.fn("Status.report")(function*() {
      const counts: Record<string, SourceCounts> = yield* store.counts()
      const indexes = new Map((yield* vectorIndex.describe()).map((i) => [i.source, i]))
      const stats = yield* workers.stats
      const snapshot = yield* metrics.snapshot
      const errors = yield* store.recentErrors(5)
      const [throughput, live, freshness, circuits] = yield* Effect.all([
        fleet.throughput,
        fleet.workers,
        fleet.freshness,
        circuit.open
      ])
      // The configured sets are the sources counted above: list() counts only the others.
      const sets = yield* embeddingSets.list(undefined, { counts, indexes })
      const usage = yield* store.ledgerSummary(config.prices)
      const { notes, sourcesReport } = sourcesSection(sources.all, counts, indexes)
      notes.push(...setNotes(sets), ...priceNotes(usage))
      for (const c of circuits) {
        notes.push(
          `the provider circuit for ${c.model} is open since ${c.openedAt} (${c.lastError}); ` +
            `no worker calls it until one probe at ${c.probeAt} succeeds`
        )
      }
      if (Option.isNone(stats) && live.length === 0) {
        notes.push("no embedding workers are running on this database (pnpm cli worker runs them)")
      }
      const st = Option.getOrUndefined(stats)
      if (st !== undefined && !st.listening) {
        notes.push(
          `wake-ups are down (the LISTEN connection is reconnecting); ` +
            `workers poll every ${config.pollIntervalMs} ms meanwhile`
        )
      }
      const result: StatusReport = {
        sources: sourcesReport,
        sets,
        queue: {
          running: st !== undefined,
          workerId: st?.workerId ?? null,
          depth: st?.depth ?? 0,
          capacity: st?.capacity ?? config.queueCapacity,
          inFlight: st?.inFlight ?? 0,
          concurrency: st?.concurrency ?? config.concurrency,
          batchSize: st?.batchSize ?? config.batchSize,
          pausedForMs: st?.pausedForMs ?? 0,
          lastError: st?.lastError ?? null,
          listening: st?.listening ?? false
        },
        throughput,
        workers: live,
        freshness,
        circuits,
        totals: {
          embedded: snapshot.embedded,
          failed: snapshot.failed,
          skipped: snapshot.skipped + snapshot.dropped,
          batches: snapshot.batches,
          providerErrors: snapshot.providerErrors
        },
        usage,
        provider: {
          provider: provider.provider,
          model: provider.model,
          dimensions: provider.dimensions,
          modelKey: modelKey
        },
        database: { kind: database.kind, description: database.description },
        indexSettings: {
          kind: config.indexKind,
          m: config.hnswM,
          efConstruction: config.hnswEfConstruction,
          efSearch: config.efSearch
        },
        recentErrors: errors.map((e) => ({
          type: e.source,
          id: e.row_id,
          error: e.error,
          at: new Date(e.at).toISOString(),
          attempts: e.attempts,
          failed: e.failed
        })),
        notes,
        generatedAt: new Date().toISOString()
      }
      return result
    })

    return { report } as const
  })
}) {}
