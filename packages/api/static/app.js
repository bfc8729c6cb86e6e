// The autoembed page: plain JavaScript, same-origin requests only (the server's CSP enforces it).
const $ = (id) => document.getElementById(id)
const REFRESH_MS = 3000
const POLL_MS = 500
const TOKEN_KEY = "autoembed.token"

let token = sessionStorage.getItem(TOKEN_KEY) ?? ""
/** What to do once the user has given a token (retry the request that got 401). */
let afterToken = null

const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v
    else node.setAttribute(k, v)
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)))
  return node
}

const showAlert = (message) => {
  const box = $("alert")
  box.textContent = message
  box.hidden = message === ""
}

class Unauthorized extends Error {}

/** fetch + JSON, with the token when there is one; API errors become Error(message). */
const api = async (path, options = {}) => {
  const headers = { accept: "application/json", ...(options.body ? { "content-type": "application/json" } : {}) }
  if (token) headers.authorization = `Bearer ${token}`
  const res = await fetch(path, { ...options, headers })
  const body = await res.json().catch(() => null)
  if (res.status === 401) throw new Unauthorized(body?.error?.message ?? "Token required")
  if (!res.ok) {
    const err = new Error(body?.error?.message ?? `HTTP ${res.status}`)
    err.status = res.status
    err.body = body
    throw err
  }
  return { status: res.status, body }
}

const askForToken = (retry) => {
  afterToken = retry
  $("token-form").hidden = false
  $("token").focus()
}

$("token-form").addEventListener("submit", (e) => {
  e.preventDefault()
  token = $("token").value.trim()
  sessionStorage.setItem(TOKEN_KEY, token)
  $("token").value = ""
  $("token-form").hidden = true
  const retry = afterToken
  afterToken = null
  retry?.()
})
$("token-cancel").addEventListener("click", () => {
  $("token-form").hidden = true
  afterToken = null
})

/** Runs `fn`; a 401 asks for the token and runs it again afterwards. */
const withAuth = async (fn) => {
  try {
    await fn()
  } catch (e) {
    if (e instanceof Unauthorized) {
      askForToken(() => withAuth(fn))
      showAlert(token ? "The token was not accepted; enter it again." : "")
    } else {
      showAlert(e.message)
    }
  }
}

// ---- search ----

const renderResults = (response) => {
  const list = $("results")
  list.replaceChildren()
  $("search-summary").textContent = `${response.results.length} result${response.results.length === 1 ? "" : "s"} for “${response.query}” (${response.mode}, ${response.model})`
  for (const r of response.results) {
    const width = Math.max(0, Math.min(1, r.score)) * 100
    const fill = el("span")
    fill.style.width = `${width}%`
    list.append(el("li", { class: "result" },
      el("div", { class: "meta" },
        el("span", { class: "badge" }, r.type),
        el("span", { class: "score", title: "score" }, `score ${r.score.toFixed(3)}`),
        el("span", { class: "scorebar", "aria-hidden": "true" }, fill),
        el("span", {}, `#${r.id}`),
        r.created_at ? el("time", { datetime: r.created_at }, new Date(r.created_at).toLocaleString()) : ""),
      r.title ? el("p", { class: "title" }, r.title) : "",
      el("p", { class: "snippet" }, r.content)))
  }
}

$("search-form").addEventListener("submit", (e) => {
  e.preventDefault()
  const q = $("q").value.trim()
  if (!q) return
  const params = new URLSearchParams({ q, mode: $("mode").value, limit: $("limit").value })
  if ($("types").value) params.set("types", $("types").value)
  $("search-button").disabled = true
  withAuth(async () => {
    const { body } = await api(`/v1/search?${params}`)
    showAlert("")
    renderResults(body)
  }).finally(() => ($("search-button").disabled = false))
})

// ---- status ----

const STATES = ["embedded", "pending", "stale", "failed"]

const renderSources = (sources) => {
  const box = $("sources")
  box.replaceChildren()
  for (const [name, s] of Object.entries(sources)) {
    const total = Math.max(1, s.embedded + s.pending + s.stale + s.failed)
    const bar = el("div", { class: "bar", role: "img", "aria-label": `${name}: ${STATES.map((k) => `${s[k]} ${k}`).join(", ")}` })
    for (const k of STATES) {
      if (s[k] === 0) continue
      const part = el("span", { class: k })
      part.style.width = `${(s[k] / total) * 100}%`
      bar.append(part)
    }
    const pct = s.total === 0 ? 100 : Math.floor((s.embedded / s.total) * 100)
    box.append(el("div", { class: "source" },
      el("div", { class: "head" },
        el("strong", {}, name),
        el("span", { class: "muted" }, `${s.embedded} / ${s.total} embedded (${pct}%) · index ${s.index.state}`)),
      bar,
      el("ul", { class: "legend" }, ...STATES.map((k) => el("li", { class: k }, `${k} ${s[k]}`)))))
  }
  // The type selector offers the sources the server has.
  const select = $("types")
  const known = [...select.options].map((o) => o.value)
  for (const name of Object.keys(sources)) if (!known.includes(name)) select.append(el("option", { value: name }, name))
}

// Every live worker process on the database (from its heartbeat), not only this one's.
const fleetText = (workers) =>
  workers.length === 0
    ? "no worker is running"
    : `${workers.length} worker process${workers.length === 1 ? "" : "es"}: ` +
      workers.map((w) => `${w.host}:${w.pid} (${w.in_flight} in flight${w.paused_for_ms > 0 ? ", paused" : ""})`).join(", ")

// Change-to-vector time over the last 5 minutes' writes, per set key.
const freshnessText = (freshness) => {
  const entries = Object.entries(freshness).filter(([, f]) => f.samples > 0)
  if (entries.length === 0) return "no row written in the last 5 minutes"
  return entries.map(([key, f]) => `${key}: p50 ${f.p50_seconds} s, p95 ${f.p95_seconds} s (${f.samples} rows)`).join("; ")
}

const tokens = (n) => n.toLocaleString("en-US")
/** Dollars: cents for a cent or more, else two significant digits. */
const usd = (n) => (n === 0 ? "$0" : n >= 0.01 ? `$${n.toFixed(2)}` : n < 0.000001 ? "<$0.000001" : `$${Number(n.toPrecision(2))}`)

/** The ledger's figures (every worker's provider calls, from the database): this hour, 24 hours, in total. */
const usageRows = (usage) => [
  ["Provider tokens", `${tokens(usage.hour.tokens)} this hour · ${tokens(usage.day.tokens)} in 24 h · ${tokens(usage.total.tokens)} in total`],
  ["Provider cost", `${usd(usage.hour.cost_usd)} this hour · ${usd(usage.day.cost_usd)} in 24 h · ${usd(usage.total.cost_usd)} in total`]
]

const renderQueue = (report) => {
  const q = report.queue
  const rows = [
    ["Workers", q.running ? `running (${q.concurrency} × batches of ${q.batch_size})` : "not in this process"],
    ["Queue depth", `${Math.max(0, q.depth)} / ${q.capacity}`],
    ["In flight", q.in_flight],
    ["Fleet", fleetText(report.workers)],
    ["Throughput", `${report.throughput.last_minute_per_second}/s last minute, ${report.throughput.last_5_minutes_per_second}/s last 5 minutes (all workers)`],
    ["Freshness", freshnessText(report.freshness)],
    ...report.circuits.map((c) => ["Circuit open", `${c.model} since ${new Date(c.opened_at).toLocaleTimeString()}: ${c.last_error} (next probe ${new Date(c.probe_at).toLocaleTimeString()})`]),
    ["Embedded here", `${report.totals.embedded} rows in ${report.totals.batches} batches`],
    ...usageRows(report.usage),
    ["Database", `${report.database.description}`]
  ]
  if (q.paused_for_ms > 0) rows.push(["Paused", `${Math.ceil(q.paused_for_ms / 1000)} s (provider errors)`])
  if (q.last_error) rows.push(["Last error", q.last_error])
  $("queue").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]))
}

const SVG = "http://www.w3.org/2000/svg"
const svg = (tag, attrs) => {
  const node = document.createElementNS(SVG, tag)
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v))
  return node
}

/** Inline SVG line chart of the status series (10-second slots). */
const renderChart = (series) => {
  const W = 300, H = 90, PAD = 14
  const max = Math.max(1, ...series.map((p) => p.embedded))
  const x = (i) => (series.length <= 1 ? 0 : (i / (series.length - 1)) * W)
  const y = (v) => H - PAD - (v / max) * (H - PAD - 4)
  const points = series.map((p, i) => `${x(i).toFixed(1)},${y(p.embedded).toFixed(1)}`)
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", "aria-hidden": "true" })
  if (series.length > 0) {
    root.append(svg("polygon", { class: "area", points: `0,${H - PAD} ${points.join(" ")} ${W},${H - PAD}` }))
    root.append(svg("polyline", { class: "line", points: points.join(" ") }))
  }
  root.append(svg("line", { class: "axis", x1: 0, y1: H - PAD, x2: W, y2: H - PAD }))
  const label = svg("text", { x: 2, y: 10 })
  label.textContent = `max ${max} per 10 s`
  root.append(label)
  const total = series.reduce((a, p) => a + p.embedded, 0)
  $("chart").setAttribute("aria-label", `Throughput: ${total} rows embedded in the last ${Math.round((series.length * 10) / 60)} minutes, at most ${max} per 10 seconds`)
  $("chart").replaceChildren(root)
}

const renderErrors = (report) => {
  const errors = report.recent_errors.map((e) =>
    el("li", {}, el("strong", {}, `${e.type} #${e.id}`), ` ${e.failed ? "failed" : "retrying"} after ${e.attempts} attempt(s): ${e.error}`))
  $("errors").replaceChildren(...(errors.length ? errors : [el("li", { class: "muted" }, "none")]))
  $("notes").replaceChildren(...report.notes.map((n) => el("li", {}, n)))
}

/** 1536 → "1.5 kB": sizes on disk at a glance. */
const bytes = (n) => {
  const units = ["B", "kB", "MB", "GB", "TB"]
  let i = 0
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000
    i++
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`
}

const indexText = (index) =>
  index.bulk_mark ? "bulk load" : !index.exists ? "missing" : !index.valid ? "building" : `valid, ${bytes(index.size_bytes)}`

/** One row per embedding set: what it embeds with, how far its backfill is, which one search reads. */
const renderSets = (sets) => {
  const rows = sets.map((s) => {
    const pct = Math.floor(s.progress * 100)
    const bar = el("progress", { max: "100", value: String(pct), "aria-label": `${s.name}: ${pct}% embedded` })
    const phase = s.phase + (s.previous ? " (rollback target)" : "")
    return el("tr", { class: s.active ? "active" : "", "data-set": s.name, "data-phase": s.phase },
      el("td", {}, s.source),
      el("td", {}, el("code", {}, s.name)),
      el("td", {}, `${s.provider}/${s.model} · ${s.dimensions}d`),
      el("td", { class: `phase-${s.phase}` }, phase),
      el("td", { class: "num" }, `${s.embedded} / ${s.total}`, bar),
      el("td", { class: "num" }, s.missing),
      el("td", { class: "num" }, s.stale),
      el("td", { class: "num" }, s.failed),
      el("td", {}, indexText(s.index)),
      el("td", { class: "num", title: s.table_bytes === null ? "in your table's column" : `table on disk: ${bytes(s.table_bytes)}` },
        bytes(s.storage_bytes)))
  })
  $("sets").tBodies[0].replaceChildren(...rows)
}

let refreshing = false
const refresh = () => {
  if (refreshing) return Promise.resolve()
  refreshing = true
  return withAuth(async () => {
    const { body } = await api("/v1/embeddings/status")
    $("provider").textContent = `Provider ${body.provider.provider}, model ${body.provider.model} (${body.provider.dimensions} dimensions) · ${body.database.kind}`
    renderSources(body.sources)
    renderSets(body.sets)
    renderQueue(body)
    renderChart(body.throughput.series)
    renderErrors(body)
    $("updated").textContent = `Updated ${new Date(body.generated_at).toLocaleTimeString()}`
  }).finally(() => (refreshing = false))
}

$("refresh").addEventListener("click", () => refresh())

// ---- backfill ----

const showJob = (job) => {
  const pct = job.total === 0 ? (job.state === "running" ? 0 : 100) : Math.min(100, Math.floor((job.processed / job.total) * 100))
  $("backfill-progress").hidden = false
  $("backfill-bar").value = pct
  $("backfill-bar").setAttribute("aria-valuetext", `${pct}%`)
  const eta = job.eta_seconds !== null && job.state === "running" ? `, about ${job.eta_seconds} s left` : ""
  const failed = job.failed > 0 ? `, ${job.failed} failed` : ""
  $("backfill-text").textContent = `${pct}% · ${job.processed} / ${job.total} rows · ${job.state}${failed}${eta}${job.error ? ` · ${job.error}` : ""}`
  $("backfill-text").dataset.state = job.state
  $("backfill-text").dataset.percent = String(pct)
}

const pollJob = async (id) => {
  for (;;) {
    const { body: job } = await api(`/v1/embeddings/backfill/${encodeURIComponent(id)}`)
    showJob(job)
    if (job.state !== "running") return job
    await new Promise((r) => setTimeout(r, POLL_MS))
  }
}

$("backfill").addEventListener("click", () => {
  $("backfill").disabled = true
  withAuth(async () => {
    let id
    try {
      const { body } = await api("/v1/embeddings/backfill", { method: "POST", body: "{}" })
      id = body.job.id
      showJob(body.job)
    } catch (e) {
      // One runs already: follow that one instead.
      if (e.status === 409 && e.body?.error?.details?.job_id) id = e.body.error.details.job_id
      else throw e
    }
    showAlert("")
    await pollJob(id)
    await refresh()
  }).finally(() => ($("backfill").disabled = false))
})

refresh()
setInterval(() => {
  if (!document.hidden) refresh()
}, REFRESH_MS)
