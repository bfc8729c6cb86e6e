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

/** One level of keys in their snake_case JSON spelling (`missingVectors` → `missing_vectors`), order kept. */
const snakeKeys = (value: object): Record<string, unknown> =>
  Object.fromEntries(Object.entries(value).map(([k, v]) => [k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), v]))

/**
 * `pnpm cli sources --json` (no HTTP route, so no contract schema): core's report under its snake_case
 * JSON names. Renamed by rule rather than field by field, so a field core adds is not silently dropped.
 */
export const sourcesJson = (report: { readonly sources: ReadonlyArray<SourceFinding> }) =>
  snakeKeys({ ...report, sources: report.sources.map(snakeKeys) })
