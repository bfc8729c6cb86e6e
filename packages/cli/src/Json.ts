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
