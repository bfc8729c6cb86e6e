import type { CompareReport, SetReport } from "@autoembed/core"
import { num, pad } from "./Output.js"

/** Human-readable output of `pnpm cli sets ...`; `--json` prints the reports' own encoding instead. */

/** 1536 → "1.5 kB": sizes on disk as people read them (powers of 1000, as `du -h --si`). */
export const formatBytes = (bytes: number): string => {
  const units = ["B", "kB", "MB", "GB", "TB"]
  let value = bytes
  let unit = 0
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000
    unit++
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`
}

/** The index as status names it, with the bulk load spelled out: while it runs there is no index by design. */
export const indexState = (r: SetReport): string =>
  r.index.bulkMark !== null ? "bulk load" : r.index.exists ? (r.index.valid ? "valid" : "building") : "missing"

/** Columns as wide as their widest cell, two spaces apart; `right` lists the right-aligned ones (numbers). */
const grid = (rows: ReadonlyArray<ReadonlyArray<string>>, right: ReadonlySet<number>): Array<string> => {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)))
  return rows.map((r) => r.map((cell, i) => pad(cell, widths[i], right.has(i))).join("  ").trimEnd())
}

const HEADER = [
  "  Set",
  "Model",
  "State",
  "Dims",
  "Embedded",
  "Missing",
  "Stale",
  "Failed",
  "Index",
  "Vectors",
  "Index size"
]
const NUMBERS = new Set([3, 4, 5, 6, 7, 9, 10])

/** `sets list`: one block per source, the active set marked with `*` (explained unless `legend` is false). */
export const setsTable = (reports: ReadonlyArray<SetReport>, legend = true): string => {
  if (reports.length === 0) return "No embedding sets (the configured sources get theirs at the first start)."
  const lines: Array<string> = []
  for (const source of [...new Set(reports.map((r) => r.source))]) {
    const rows = reports.filter((r) => r.source === source).map((r) => [
      `${r.active ? "*" : " "} ${r.name}`,
      `${r.provider}/${r.model}`,
      r.phase,
      String(r.dimensions),
      `${num(r.embedded)}/${num(r.total)}`,
      num(r.missing),
      num(r.stale),
      num(r.failed),
      indexState(r),
      formatBytes(r.storageBytes),
      formatBytes(r.index.sizeBytes)
    ])
    if (lines.length > 0) lines.push("")
    lines.push(`Embedding sets of ${source}`, ...grid([HEADER, ...rows], NUMBERS).map((l) => `  ${l}`))
  }
  if (legend) lines.push("", "* the active set: search reads it unless asked for another (search --set <name>)")
  return lines.join("\n")
}

const percent = (x: number) => `${(x * 100).toFixed(1)}%`
const ms = (x: number) => `${x.toFixed(1)} ms`

/** `sets compare`: the two sets side by side; nDCG@10 and recall@10 when the queries came with judgements. */
export const compareTable = (report: CompareReport): string => {
  const { a, b } = report
  const score = (x: number | undefined) => (x === undefined ? "-" : x.toFixed(3))
  const rows = [
    ["", a.name, b.name],
    ["Model", `${a.provider}/${a.model}`, `${b.provider}/${b.model}`],
    ["Dimensions", String(a.dimensions), String(b.dimensions)],
    ["Embedded", `${num(a.embedded)}/${num(a.total)}`, `${num(b.embedded)}/${num(b.total)}`],
    ["Latency p50", ms(a.latencyP50Ms), ms(b.latencyP50Ms)],
    ["Latency p95", ms(a.latencyP95Ms), ms(b.latencyP95Ms)],
    ["Vectors", formatBytes(a.storageBytes), formatBytes(b.storageBytes)],
    ["Index", formatBytes(a.indexBytes), formatBytes(b.indexBytes)],
    ...(a.ndcgAt10 !== undefined || b.ndcgAt10 !== undefined
      ? [["nDCG@10", score(a.ndcgAt10), score(b.ndcgAt10)], ["Recall@10", score(a.recallAt10), score(b.recallAt10)]]
      : [])
  ]
  return [
    `Comparing ${a.name} and ${b.name} of ${report.source} over ${num(report.queries)} ${
      report.querySource === "sampled"
        ? "queries sampled from the rows' own texts"
        : a.ndcgAt10 === undefined
        ? "given queries"
        : "judged queries"
    }`,
    `  Top-10 overlap: ${percent(report.overlapAt10)} (mean share of the ten results both sets return)`,
    "",
    ...grid(rows, new Set([1, 2])).map((l) => `  ${l}`)
  ].join("\n")
}
