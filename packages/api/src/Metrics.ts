import {
  type Histogram as CoreHistogram,
  type LedgerLine,
  type LedgerSummary,
  type MetricsSnapshot,
  PipelineMetrics,
  type SetReport,
  Status,
  type StatusReport,
  WorkerStatus
} from "@autoembed/core"
import { Effect, Option } from "effect"
import { Counter, Gauge, Histogram, type Metric, Registry } from "prom-client"

/** What one scrape reads from core: the in-process counters, the queue (if this process runs workers), the database. */
interface Scrape {
  readonly pipeline: MetricsSnapshot
  readonly queue: Option.Option<{ depth: number; capacity: number; inFlight: number; listening: boolean }>
  readonly rows: Option.Option<
    Readonly<Record<string, Readonly<Record<"embedded" | "pending" | "stale" | "failed", number>>>>
  >
  readonly sets: Option.Option<ReadonlyArray<SetReport>>
  readonly fleet: Option.Option<Pick<StatusReport, "workers" | "freshness" | "sources" | "circuits">>
  readonly usage: Option.Option<LedgerSummary>
}

const PROVIDER_ERROR_REASONS = ["Transient", "RateLimited", "InvalidInput", "Auth", "ModelNotFound", "BadResponse"]

/**
 * A histogram core has already bucketed (PipelineMetrics counts each observation in every bucket it
 * fits, in milliseconds): handed to prom-client's registry, which renders it, as a collector object.
 * prom-client's own Histogram only takes single observations.
 */
const bucketedHistogram = (
  name: string,
  help: string,
  read: () => CoreHistogram | undefined,
  scale: number
) =>
  ({
    name,
    help,
    type: "histogram",
    get: async () => {
      const h = read()
      const round = (n: number) => Math.round(n * scale * 1e6) / 1e6
      const values = h === undefined ? [] : [
        ...h.buckets.map((b, i) => ({ metricName: `${name}_bucket`, labels: { le: round(b) }, value: h.counts[i] })),
        { metricName: `${name}_bucket`, labels: { le: "+Inf" }, value: h.count },
        { metricName: `${name}_sum`, labels: {}, value: round(h.sum) },
        { metricName: `${name}_count`, labels: {}, value: h.count }
      ]
      return { name, help, type: "histogram", values, aggregator: "sum" }
    }
  }) as unknown as Metric

/**
 * This app's Prometheus registry (prom-client): HTTP traffic observed per request, and gauges and
 * counters whose collect() reads the figures of the current scrape from core.
 */
export class HttpMetrics {
  readonly registry = new Registry()
  private scrape: Scrape | undefined
  private readonly requests = new Counter({
    name: "autoembed_http_requests_total",
    help: "HTTP requests answered, by method, route pattern and status.",
    labelNames: ["method", "route", "status"] as const,
    registers: [this.registry]
  })
  private readonly durations = new Histogram({
    name: "autoembed_http_request_duration_seconds",
    help: "Time to answer an HTTP request.",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry]
  })

  constructor() {
    // Arrow functions bind the instance; prom-client calls collect() with the metric as `this`.
    const self = () => this.scrape
    const registers = [this.registry]
    const counter = (name: string, help: string, read: (s: Scrape) => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          const s = self()
          this.reset()
          if (s !== undefined) this.inc(read(s))
        }
      })
    const gauge = (name: string, help: string, read: (s: Scrape) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const s = self()
          if (s !== undefined) this.set(read(s))
        }
      })
    new Counter({
      name: "autoembed_embeddings_total",
      help: "Rows processed by this process's embedding workers, by outcome.",
      labelNames: ["outcome"] as const,
      registers,
      collect() {
        const s = self()
        this.reset()
        if (s === undefined) return
        for (const outcome of ["embedded", "failed", "skipped", "dropped"] as const) {
          this.inc({ outcome }, s.pipeline[outcome])
        }
      }
    })
    counter("autoembed_batches_total", "Embedding batches written.", (s) => s.pipeline.batches)
    new Counter({
      name: "autoembed_provider_errors_total",
      help: "Embedding provider errors, by reason.",
      labelNames: ["reason"] as const,
      registers,
      collect() {
        const s = self()
        this.reset()
        if (s === undefined) return
        for (const reason of PROVIDER_ERROR_REASONS) this.inc({ reason }, s.pipeline.providerErrors[reason] ?? 0)
      }
    })
    this.registry.registerMetric(
      bucketedHistogram(
        "autoembed_batch_duration_seconds",
        "Time to embed and write one batch.",
        () => self()?.pipeline.batchLatency,
        0.001
      )
    )
    counter("autoembed_searches_total", "Searches answered.", (s) => s.pipeline.searches)
    this.registry.registerMetric(
      bucketedHistogram(
        "autoembed_search_duration_seconds",
        "Time to answer one search.",
        () => self()?.pipeline.searchLatency,
        0.001
      )
    )
    const queue = <A>(s: Scrape, f: (q: Option.Option.Value<Scrape["queue"]>) => A, none: A) =>
      Option.match(s.queue, { onNone: () => none, onSome: f })
    gauge(
      "autoembed_queue_depth",
      "Claimed rows waiting in this process's in-memory queue.",
      (s) => queue(s, (q) => Math.max(0, q.depth), 0)
    )
    gauge("autoembed_queue_capacity", "Bound of the in-memory queue.", (s) => queue(s, (q) => q.capacity, 0))
    gauge(
      "autoembed_queue_in_flight",
      "Rows being embedded right now by this process.",
      (s) => queue(s, (q) => q.inFlight, 0)
    )
    gauge("autoembed_workers_running", "1 when this process runs embedding workers.", (s) => queue(s, () => 1, 0))
    gauge(
      "autoembed_wakeups_live",
      "1 while this process's workers are woken by LISTEN/NOTIFY; " +
        "0 while it reconnects (they poll) or without workers.",
      (s) => queue(s, (q) => (q.listening ? 1 : 0), 0)
    )
    new Gauge({
      name: "autoembed_rows",
      help: "Rows per source and embedding state, from the database.",
      labelNames: ["source", "state"] as const,
      registers,
      collect() {
        this.reset()
        const rows = self()?.rows
        if (rows === undefined || Option.isNone(rows)) return
        for (const [source, c] of Object.entries(rows.value)) {
          for (const state of ["embedded", "pending", "stale", "failed"] as const) this.set({ source, state }, c[state])
        }
      }
    })
    this.setGauges()
    this.fleetMetrics()
    this.usageGauges()
    gauge(
      "autoembed_database_up",
      "1 when the last status query reached the database.",
      (s) => (Option.isSome(s.rows) ? 1 : 0)
    )
  }

  /**
   * One series per embedding set (labels source and set: a handful per source, never per row), from
   * the status report's list, so a shadow set's backfill and a cut-over can be graphed and alerted on.
   */
  private setGauges() {
    const self = () => this.scrape
    const registers = [this.registry]
    const perSet = (
      name: string,
      help: string,
      values: (set: SetReport) => ReadonlyArray<readonly [Record<string, string>, number]>,
      extraLabels: ReadonlyArray<string> = []
    ) =>
      new Gauge({
        name,
        help,
        labelNames: ["source", "set", ...extraLabels],
        registers,
        collect() {
          // Reset first: a dropped set's series must disappear, not keep its last value.
          this.reset()
          const sets = self()?.sets
          if (sets === undefined || Option.isNone(sets)) return
          for (const set of sets.value) {
            for (const [labels, value] of values(set)) this.set({ source: set.source, set: set.name, ...labels }, value)
          }
        }
      })
    perSet(
      "autoembed_set_info",
      "1 for every embedding set, labelled with its provider, model, dimensions and phase (active, building, ready).",
      (s) => [[{ provider: s.provider, model: s.model, dimensions: String(s.dimensions), phase: s.phase }, 1]],
      ["provider", "model", "dimensions", "phase"]
    )
    perSet(
      "autoembed_set_rows",
      "Rows per embedding set and state: embedded, missing (no vector in the set yet), stale, failed.",
      (s) => (["embedded", "missing", "stale", "failed"] as const).map((state) => [{ state }, s[state]] as const),
      ["state"]
    )
    perSet("autoembed_set_active", "1 for the set search reads, 0 for the others.", (s) => [[{}, s.active ? 1 : 0]])
    perSet("autoembed_set_progress", "Share of the source's rows the set has a vector for, 0 to 1.", (s) => [
      [{}, s.progress]
    ])
    perSet(
      "autoembed_set_index_bytes",
      "Size of the set's HNSW index on disk (0 while it is missing).",
      (s) => [[{}, s.index.sizeBytes]]
    )
    perSet(
      "autoembed_set_storage_bytes",
      "The set's vector payload: embedded rows × (4 × dimensions + 8) bytes, " +
        "the same measure for autoembed's table and a vector column of the user's table.",
      (s) => [[{}, s.storageBytes]]
    )
    perSet(
      "autoembed_set_table_bytes",
      "On-disk size of autoembed's vector table of the set, without its index " +
        "(no series for a set in a column of the user's table).",
      (s) => (s.tableBytes === null ? [] : [[{}, s.tableBytes]])
    )
  }

  /**
   * The fleet as the database sees it, the same from every process (an API without workers too):
   * live workers, freshness (change to vector, a summary per set key over the last 5 minutes) and
   * the age of the oldest pending row per source.
   */
  private fleetMetrics() {
    const self = () => Option.getOrUndefined(this.scrape?.fleet ?? Option.none())
    const registers = [this.registry]
    new Gauge({
      name: "autoembed_fleet_workers",
      help: "Live embedding worker processes on the database (heartbeat in the last 15 s).",
      registers,
      collect() {
        this.set(self()?.workers.length ?? 0)
      }
    })
    new Gauge({
      name: "autoembed_provider_circuit_open",
      help: "1 per model whose circuit is open (no worker calls it until a probe succeeds).",
      labelNames: ["model"] as const,
      registers,
      collect() {
        this.reset()
        for (const c of self()?.circuits ?? []) this.set({ model: c.model }, 1)
      }
    })
    new Gauge({
      name: "autoembed_oldest_pending_seconds",
      help: "Age of the oldest row waiting for its vector, per source (0 when none waits).",
      labelNames: ["source"] as const,
      registers,
      collect() {
        this.reset()
        for (const [source, c] of Object.entries(self()?.sources ?? {})) {
          this.set({ source }, c.oldestPendingSeconds ?? 0)
        }
      }
    })
    const help =
      "Seconds from a row's change to its vector being written, per set key, over the last 5 minutes' writes."
    this.registry.registerMetric({
      name: "autoembed_freshness_seconds",
      help,
      type: "summary",
      get: async () => {
        const values = Object.entries(self()?.freshness ?? {}).flatMap(([source, f]) => [
          ...(f.p50Seconds === null ? [] : [{ labels: { source, quantile: 0.5 }, value: f.p50Seconds }]),
          ...(f.p95Seconds === null ? [] : [{ labels: { source, quantile: 0.95 }, value: f.p95Seconds }]),
          { metricName: "autoembed_freshness_seconds_count", labels: { source }, value: f.samples }
        ])
        return { name: "autoembed_freshness_seconds", help, type: "summary", values, aggregator: "sum" }
      }
    } as unknown as Metric)
  }

  /**
   * The token ledger, from the database (every process's provider calls): running totals per source,
   * set, model and kind, which only grow (so `increase()` works on them as on counters), and the
   * current hour's and last 24 hours' figures as labelled windows.
   */
  private usageGauges() {
    const self = () => this.scrape
    const registers = [this.registry]
    const labels = (l: LedgerLine) => ({ source: l.source, set: l.set, model: l.model, kind: l.kind })
    const perLine = (name: string, help: string, values: (l: LedgerLine) => ReadonlyArray<readonly [string, number]>) =>
      new Gauge({
        name,
        help,
        labelNames: ["source", "set", "model", "kind", "window"],
        registers,
        collect() {
          this.reset()
          const usage = self()?.usage
          if (usage === undefined || Option.isNone(usage)) return
          for (const line of usage.value.lines) {
            for (const [window, value] of values(line)) {
              this.set(window === "" ? labels(line) : { ...labels(line), window }, value)
            }
          }
        }
      })
    perLine(
      "autoembed_provider_tokens_total",
      "Input tokens sent to the embedding provider since the ledger began (provider-reported where it reports usage).",
      (l) => [["", l.total.tokens]]
    )
    perLine(
      "autoembed_provider_cost_usd_total",
      "What those tokens cost in US dollars at the configured prices (0 for local models and unpriced ones).",
      (l) => [["", l.total.costUsd]]
    )
    perLine(
      "autoembed_provider_tokens",
      "Input tokens sent in the current clock hour (window=hour) and the last 24 clock hours (window=day).",
      (l) => [["hour", l.hour.tokens], ["day", l.day.tokens]]
    )
    perLine(
      "autoembed_provider_cost_usd",
      "Their cost in US dollars: the current clock hour (window=hour) and the last 24 clock hours (window=day).",
      (l) => [["hour", l.hour.costUsd], ["day", l.day.costUsd]]
    )
  }

  record(method: string, route: string, status: number, seconds: number): void {
    this.requests.inc({ method, route, status: String(status) })
    this.durations.observe(seconds)
  }

  /** Reads core's figures once, then lets prom-client render the registry (text exposition 0.0.4). */
  render() {
    return Effect.gen(this, function*() {
      const pipeline = yield* Effect.flatMap(PipelineMetrics, (m) => m.snapshot)
      const queue = yield* Effect.flatMap(WorkerStatus, (w) => w.stats)
      // Row counts come from the database; a scrape during an outage still reports the in-process figures.
      const status = yield* Effect.option(Effect.flatMap(Status, (st) => st.report()))
      this.scrape = {
        pipeline,
        queue,
        rows: Option.map(status, (s) => s.sources),
        sets: Option.map(status, (s) => s.sets),
        fleet: status,
        usage: Option.map(status, (s) => s.usage)
      }
      return yield* Effect.promise(() => this.registry.metrics())
    })
  }
}

/** The Prometheus text exposition of this process's pipeline, queue, database state and HTTP traffic. */
export const renderMetrics = (http: HttpMetrics) => http.render()
