import type { SourceFinding } from "@autoembed/core"
import { Schema } from "effect"

/**
 * `--json` output is the HTTP contract's encoding of the same value, so a script reads one shape
 * from `pnpm cli status --json` and `GET /v1/embeddings/status`. Excess fields are refused as the
 * server refuses them: a field core adds without the contract following fails here too.
 */
export const encode = <A, I>(schema: Schema.Schema<A, I, never>, value: A): I =>
  Schema.encodeSync(schema, { onExcessProperty: "error" })(value)

export const toJson = <A, I>(schema: Schema.Schema<A, I, never>, value: A, indent?: number): string =>
  JSON.stringify(encode(schema, value), null, indent)

/** `pnpm cli sources --json`: core's report under its snake_case JSON names, in the same key order. */
export const sourcesJson = (report: {
  readonly database: string
  readonly schema: string
  readonly configFile: string
  readonly sources: ReadonlyArray<SourceFinding>
  readonly problems: ReadonlyArray<string>
}) => ({
  database: report.database,
  schema: report.schema,
  config_file: report.configFile,
  sources: report.sources.map((s) => ({
    name: s.name,
    table: s.table,
    builtin: s.builtin,
    storage: s.storage,
    rows: s.rows,
    missing_vectors: s.missingVectors,
    triggers: s.triggers,
    index: s.index,
    problems: s.problems
  })),
  problems: report.problems
})
