import { Effect } from "effect"
import type { Source } from "../sources/Sources.js"
import type { StoreContext } from "./StoreContext.js"

/** What embedding a source object's pending work would send: rows and (counted) input tokens. */
export interface WorkEstimate {
  readonly rows: number
  /** `estimateTokens` of each row's text as the provider would be sent it, summed. */
  readonly tokens: number
}

/** How the texts reach the provider: its model's prefix before them, cut at its context length. */
export interface InputShape {
  /** UTF-8 bytes of the prefix the model puts before documents. */
  readonly prefixBytes: number
  /** The model's context: no input counts for more. */
  readonly contextTokens: number
}

/**
 * Dry-run estimates, counted in the database: one aggregate statement per set over the rows a
 * run would embed, so no text leaves PostgreSQL and memory stays flat however large the table.
 */
export const makeStoreEstimate = (ctx: StoreContext) => {
  const { hasVector, id, modelOf, named, sql, st, table, text } = ctx

  /**
   * Tokens of the rows a run over `source` would embed: no vector yet, another model's vector, or
   * queued for changed content; failed rows only with `includeFailed`. Each row counts as
   * `estimateTokens` counts it, `ceil(UTF-8 bytes / 3)` of prefix and text, capped at the context.
   */
  const estimateWork = (source: Source, shape: InputShape, options: { readonly includeFailed: boolean }) =>
    Effect.gen(function*() {
      const rowKey = sql`t.${id(source)}::text`
      const failed = sql`EXISTS (SELECT 1 FROM ${st.queue} ae_f
        WHERE ae_f.source = ${source.name} AND ae_f.row_id = ${rowKey} AND ae_f.failed_at IS NOT NULL)`
      const [r] = yield* sql<{ rows: number; tokens: number }>`
        SELECT count(*)::int AS rows,
          coalesce(sum(least(
            ceil((octet_length(coalesce(${text(source)}, '')) + ${shape.prefixBytes}::int) / 3.0),
            ${shape.contextTokens}::int
          )), 0)::float8 AS tokens
        FROM ${table(source)} t
        WHERE (
          NOT ${hasVector(source)}
          OR EXISTS (SELECT 1 FROM ${st.rows} ae_r
            WHERE ae_r.source = ${source.name} AND ae_r.row_id = ${rowKey} AND ae_r.model <> ${modelOf(source)})
          OR EXISTS (SELECT 1 FROM ${st.queue} ae_q
            WHERE ae_q.source = ${source.name} AND ae_q.row_id = ${rowKey} AND ae_q.failed_at IS NULL)
        ) AND ${options.includeFailed ? sql`true` : sql`NOT ${failed}`}`
      const estimate: WorkEstimate = { rows: r?.rows ?? 0, tokens: r?.tokens ?? 0 }
      return estimate
    }).pipe(named("estimateWork"))

  return { estimateWork } as const
}
