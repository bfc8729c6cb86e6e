import type { BackfillJob, DryRunReport, inspectSources, StatusReport } from "@autoembed/core"
import type { Effect } from "effect"

/** Human-readable tables and the progress bar; JSON output is the services' own objects. */

export const pad = (s: string | number, n: number, right = false) => {
  const t = String(s)
  return right ? t.padStart(n) : t.padEnd(n)
}
const label = (name: string) => name.charAt(0).toUpperCase() + name.slice(1)
export const num = (n: number) => n.toLocaleString("en-US")

export const formatDuration = (seconds: number | null): string => {
  if (seconds === null || !Number.isFinite(seconds)) return "--"
  const s = Math.max(0, Math.round(seconds))
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`
}

/** Dollars: cents for amounts of a cent or more, else enough digits to see a fraction of a cent. */
export const usd = (n: number): string =>
  n === 0
    ? "$0"
    : n >= 0.01
    ? `$${n.toFixed(2)}`
    : n < 0.000001
    ? "<$0.000001"
    : `$${n.toPrecision(2).replace(/\.?0+$/, "")}`

export const dryRunTable = (report: DryRunReport, where: string): string => {
  const lines = [
    `Backfill dry run on ${where} (nothing was changed)`,
    "",
    `  ${pad("Type", 12)}${pad("Missing", 10, true)}${pad("Stale", 10, true)}${pad("Failed", 10, true)}${
      pad("Tokens", 14, true)
    }${pad("Cost", 12, true)}  Model`
  ]
  // Messages first, then atoms, then any custom sources, as people read them.
  const order = Object.keys(report.entityTypes).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))
  for (const t of order) {
    const c = report.entityTypes[t]
    lines.push(
      `  ${pad(label(t), 12)}${pad(num(c.missing), 10, true)}${pad(num(c.stale), 10, true)}${
        pad(num(c.failed), 10, true)
      }${pad(`~${num(c.tokens)}`, 14, true)}${pad(usd(c.costUsd), 12, true)}  ${c.model}`
    )
  }
  lines.push(`  ${pad("Total", 12)}${pad(num(report.total), 10, true)}  rows a run would embed`)
  lines.push(
    `  ${pad("Estimate", 12)}${pad(`~${num(report.tokens)}`, 10, true)}  input tokens, ${usd(report.costUsd)} ` +
      `at the configured prices`
  )
  return lines.join("\n")
}

/** The ledger's figures: tokens and cost in the current hour, the last 24 hours and in total. */
const usageLines = (usage: StatusReport["usage"]): Array<string> => {
  if (usage.lines.length === 0) return []
  const row = (name: string, hour: string, day: string, total: string) =>
    `  ${pad(name, 40)}${pad(hour, 12, true)}${pad(day, 12, true)}${pad(total, 14, true)}`
  return [
    "",
    row("Provider tokens (cost)", "This hour", "24 hours", "Total"),
    ...usage.lines.map((l) =>
      row(
        `${l.set}${l.kind === "query" ? " (queries)" : ""} ${l.model}`.slice(0, 39),
        num(l.hour.tokens),
        num(l.day.tokens),
        num(l.total.tokens)
      )
    ),
    row("All", num(usage.hour.tokens), num(usage.day.tokens), num(usage.total.tokens)),
    row("Cost", usd(usage.hour.costUsd), usd(usage.day.costUsd), usd(usage.total.costUsd))
  ]
}
const rank = (t: string) => (t === "messages" ? 0 : t === "atoms" ? 1 : 2)

export const progressBar = (job: BackfillJob, width = 30): string => {
  const fraction = job.total > 0 ? Math.min(1, job.processed / job.total) : 1
  const filled = Math.round(fraction * width)
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${num(job.processed)}/${num(job.total)} ${
    Math.floor(fraction * 100)
  }%  ${job.ratePerSecond}/s  ETA ${formatDuration(job.etaSeconds)}`
}

export const summaryTable = (job: BackfillJob): string =>
  [
    `Backfill ${job.id} ${job.state}`,
    `  ${pad("Succeeded", 12)}${pad(num(job.succeeded), 10, true)}`,
    `  ${pad("Failed", 12)}${pad(num(job.failed), 10, true)}`,
    `  ${pad("Skipped", 12)}${pad(num(job.skipped), 10, true)}`,
    `  ${pad("Elapsed", 12)}${pad(formatDuration(job.elapsedSeconds), 10, true)}`,
    ...(job.error ? [`  ${job.error}`] : [])
  ].join("\n")

export const statusTable = (report: StatusReport): string => {
  const lines = [
    `autoembed status: ${report.database.description}, ${report.provider.modelKey} (${report.provider.dimensions}-d)`,
    "",
    `  ${pad("Type", 12)}${pad("Total", 10, true)}${pad("Embedded", 10, true)}${pad("Pending", 10, true)}${
      pad("Stale", 10, true)
    }${pad("Failed", 10, true)}  Oldest pending  Index`
  ]
  for (const [t, c] of Object.entries(report.sources).sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b))) {
    lines.push(
      `  ${pad(label(t), 12)}${pad(num(c.total), 10, true)}${pad(num(c.embedded), 10, true)}${
        pad(num(c.pending), 10, true)
      }${pad(num(c.stale), 10, true)}${pad(num(c.failed), 10, true)}  ${
        pad(formatDuration(c.oldestPendingSeconds), 14)
      }  ${c.index.state}`
    )
  }
  lines.push(...usageLines(report.usage))
  if (report.recentErrors.length > 0) {
    lines.push("", "  Recent errors:")
    for (const e of report.recentErrors) {
      lines.push(`    ${e.at} ${e.type} ${e.id}${e.failed ? " (failed)" : ""}: ${e.error}`)
    }
  }
  if (report.notes.length > 0) lines.push("", ...report.notes.map((n) => `  note: ${n}`))
  return lines.join("\n")
}

/** What `inspectSources` reports: the shape core defines, not a copy of it. */
type SourcesReport = Effect.Effect.Success<typeof inspectSources>

/** `pnpm cli sources`: one block per source; the problems follow on stderr with a non-zero exit. */
export const sourcesTable = (report: SourcesReport): string => {
  const lines = [
    `Sources on ${report.database} (declared in ${report.configFile}; autoembed's schema: ${report.schema})`,
    ""
  ]
  const width = Math.max(6, ...report.sources.map((s) => s.name.length)) + 2
  for (const s of report.sources) {
    const index = s.index ? `${s.index.name} ${s.index.state}${s.index.owned ? "" : " (yours)"}` : "none"
    lines.push(`  ${pad(s.name, width)}${s.table}${s.builtin ? " (built-in)" : ""}`)
    if (s.storage === null) {
      lines.push(`  ${pad("", width)}not usable as declared (see below)`)
      continue
    }
    lines.push(
      `  ${pad("", width)}rows ${num(s.rows ?? 0)}, missing vectors ${
        num(s.missingVectors ?? 0)
      }; vectors in ${s.storage}`
    )
    lines.push(`  ${pad("", width)}triggers ${s.triggers}/3; index ${index}`)
  }
  if (report.sources.length === 0) {
    lines.push("  no sources declared (add them to autoembed.config.json; see the README)")
  }
  return lines.join("\n")
}
