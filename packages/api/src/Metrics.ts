import { EmbeddingQueue, type Histogram, PipelineMetrics, Status } from "@autoembed/core"
import { Effect, Option } from "effect"

/** HTTP request counts by method, route pattern (never the raw path: bounded label sets) and status. */
export class HttpMetrics {
  private readonly counts = new Map<string, number>()
  private readonly durations = {
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    counts: new Array<number>(11).fill(0),
    sum: 0,
    count: 0
  }

  record(method: string, route: string, status: number, seconds: number): void {
    const key = `${method}\u0000${route}\u0000${status}`
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1)
    const d = this.durations
    d.buckets.forEach((b, i) => {
      if (seconds <= b) d.counts[i]++
    })
    d.sum += seconds
    d.count++
  }

  lines(): Array<string> {
    const out = [
      "# HELP autoembed_http_requests_total HTTP requests answered, by method, route pattern and status.",
      "# TYPE autoembed_http_requests_total counter"
    ]
    for (const [key, n] of [...this.counts].sort()) {
      const [method, route, status] = key.split("\u0000")
      out.push(`autoembed_http_requests_total{method="${esc(method)}",route="${esc(route)}",status="${status}"} ${n}`)
    }
    out.push(
      ...histogram("autoembed_http_request_duration_seconds", "Time to answer an HTTP request.", this.durations, 1)
    )
    return out
  }
}

/** Label values escaped as the exposition format requires. */
const esc = (s: string) => s.replace(/\\/g, "\\\\").replace(/"/g, "\\\"").replace(/\n/g, "\\n")

const num = (n: number) => (Number.isFinite(n) ? String(Math.round(n * 1e6) / 1e6) : "0")

/** A histogram in Prometheus form; core keeps non-cumulative milliseconds in some places, so `scale` converts to seconds. */
const histogram = (
  name: string,
  help: string,
  h: Pick<Histogram, "buckets" | "counts" | "sum" | "count">,
  scale: number
): Array<string> => {
  const out = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`]
  // PipelineMetrics counts an observation in every bucket it fits (already cumulative).
  h.buckets.forEach((b, i) => out.push(`${name}_bucket{le="${num(b * scale)}"} ${h.counts[i]}`))
  out.push(`${name}_bucket{le="+Inf"} ${h.count}`, `${name}_sum ${num(h.sum * scale)}`, `${name}_count ${h.count}`)
  return out
}

const metric = (
  name: string,
  type: "counter" | "gauge",
  help: string,
  samples: ReadonlyArray<[labels: string, value: number]>
) => [
  `# HELP ${name} ${help}`,
  `# TYPE ${name} ${type}`,
  ...samples.map(([labels, value]) => `${name}${labels ? `{${labels}}` : ""} ${num(value)}`)
]

/** The Prometheus text exposition (version 0.0.4) of this process's pipeline, queue, database state and HTTP traffic. */
export const renderMetrics = (http: HttpMetrics) =>
  Effect.gen(function*() {
    const metrics = yield* PipelineMetrics
    const s = yield* metrics.snapshot
    const queue = yield* Effect.serviceOption(EmbeddingQueue)
    const stats = Option.isSome(queue) ? Option.some(yield* queue.value.stats) : Option.none()
    // Row counts come from the database; a scrape during an outage still reports the in-process figures.
    const status = yield* Effect.option(Effect.flatMap(Status, (st) => st.report()))
    const lines: Array<string> = [
      ...metric(
        "autoembed_embeddings_total",
        "counter",
        "Rows processed by this process's embedding workers, by outcome.",
        [
          ["outcome=\"embedded\"", s.embedded],
          ["outcome=\"failed\"", s.failed],
          ["outcome=\"skipped\"", s.skipped],
          ["outcome=\"dropped\"", s.dropped]
        ]
      ),
      ...metric("autoembed_batches_total", "counter", "Embedding batches written.", [["", s.batches]]),
      ...metric(
        "autoembed_provider_errors_total",
        "counter",
        "Embedding provider errors, by reason.",
        ["Transient", "RateLimited", "InvalidInput", "Auth", "ModelNotFound", "BadResponse"].map((
          r
        ): [string, number] => [`reason="${r}"`, s.providerErrors[r] ?? 0])
      ),
      ...histogram("autoembed_batch_duration_seconds", "Time to embed and write one batch.", s.batchLatency, 0.001),
      ...metric("autoembed_searches_total", "counter", "Searches answered.", [["", s.searches]]),
      ...histogram("autoembed_search_duration_seconds", "Time to answer one search.", s.searchLatency, 0.001),
      ...metric("autoembed_queue_depth", "gauge", "Claimed rows waiting in this process's in-memory queue.", [[
        "",
        Option.match(stats, { onNone: () => 0, onSome: (q) => Math.max(0, q.depth) })
      ]]),
      ...metric("autoembed_queue_capacity", "gauge", "Bound of the in-memory queue.", [[
        "",
        Option.match(stats, { onNone: () => 0, onSome: (q) => q.capacity })
      ]]),
      ...metric("autoembed_queue_in_flight", "gauge", "Rows being embedded right now by this process.", [[
        "",
        Option.match(stats, { onNone: () => 0, onSome: (q) => q.inFlight })
      ]]),
      ...metric("autoembed_workers_running", "gauge", "1 when this process runs embedding workers.", [[
        "",
        Option.isSome(stats) ? 1 : 0
      ]]),
      ...metric(
        "autoembed_wakeups_live",
        "gauge",
        "1 while this process's workers are woken by LISTEN/NOTIFY; 0 while it reconnects (they poll) or without workers.",
        [["", Option.match(stats, { onNone: () => 0, onSome: (q) => (q.listening ? 1 : 0) })]]
      )
    ]
    if (Option.isSome(status)) {
      const rows: Array<[string, number]> = []
      for (const [source, c] of Object.entries(status.value.sources)) {
        for (const state of ["embedded", "pending", "stale", "failed"] as const) {
          rows.push([`source="${esc(source)}",state="${state}"`, c[state]])
        }
      }
      lines.push(...metric("autoembed_rows", "gauge", "Rows per source and embedding state, from the database.", rows))
    }
    lines.push(
      ...metric("autoembed_database_up", "gauge", "1 when the last status query reached the database.", [[
        "",
        Option.isSome(status) ? 1 : 0
      ]])
    )
    lines.push(...http.lines())
    return lines.join("\n") + "\n"
  })
