import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"
import { entityOf, type Source } from "../sources/SourceCatalog.js"
import { sourceSql } from "../sources/SourceSql.js"
import type { Ranked } from "./Fusion.js"
import type { SearchResult } from "./Search.js"

/** Characters of content returned per result. */
export const SNIPPET_CHARS = 300

interface HydratedRow {
  readonly id: string
  readonly title: string | null
  readonly content: string | null
  readonly topic_id: unknown
  readonly created_at: unknown
}

/** Integer-typed keys come back as numbers, everything else (uuid, text) as strings. */
const INTEGER_TYPES = new Set(["smallint", "integer", "bigint"])

export const snippet = (text: string | null): string => {
  if (text === null) return ""
  const flat = text.replace(/\s+/g, " ").trim()
  if (flat.length <= SNIPPET_CHARS) return flat
  const cut = flat.slice(0, SNIPPET_CHARS)
  const space = cut.lastIndexOf(" ")
  return (space > SNIPPET_CHARS * 0.6 ? cut.slice(0, space) : cut) + "…"
}

const isoOf = (value: unknown): string | null => {
  if (value === null || value === undefined) return null
  const date = value instanceof Date ? value : new Date(String(value))
  return Number.isNaN(date.getTime()) ? String(value) : date.toISOString()
}

const keyOf = (value: unknown): number | string | null => {
  if (value === null || value === undefined) return null
  if (typeof value === "number") return value
  const s = String(value)
  return /^-?\d{1,15}$/.test(s) ? Number(s) : s
}

/** A ranked row and its display columns, as a search result. */
const toResult = (r: Ranked, row: HydratedRow): SearchResult => ({
  type: entityOf(r.source),
  id: INTEGER_TYPES.has(r.source.idType) ? Number(r.id) : r.id,
  score: r.score,
  title: row.title,
  content: snippet(row.content),
  topicId: keyOf(row.topic_id),
  createdAt: isoOf(row.created_at)
})

/** Loads the display rows of ranked results (title, snippet, topic, time) from the user's tables. */
export const makeHydration = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const { id, idType, table, text } = sourceSql(sql)

  /** Display columns of the ranked rows; the user's table is the only relation in scope of the text. */
  const rowsOf = (s: Source, ids: ReadonlyArray<string>) => {
    const nullCol = sql.literal("NULL")
    const content = s.contentColumn ? sql`${sql(s.contentColumn)}::text` : text(s)
    return sql<HydratedRow>`
      SELECT t.${id(s)}::text AS id,
        ${s.titleColumn ? sql`${sql(s.titleColumn)}::text` : nullCol} AS title,
        left(${content}, ${SNIPPET_CHARS * 2}) AS content,
        ${s.topicColumn ? sql(s.topicColumn) : nullCol} AS topic_id,
        ${s.createdAtColumn ? sql(s.createdAtColumn) : nullCol} AS created_at
      FROM ${table(s)} t
      WHERE t.${id(s)} = ANY(${sql`${ids}::text[]::${idType(s)}[]`})`
  }

  /** The results in ranked order; a row deleted since it was ranked is left out. */
  const hydrate = (searched: ReadonlyArray<Source>, top: ReadonlyArray<Ranked>) =>
    Effect.gen(function*() {
      const rows = new Map<string, HydratedRow>()
      for (const s of searched) {
        const ids = top.filter((r) => r.source === s).map((r) => r.id)
        if (ids.length === 0) continue
        for (const row of yield* rowsOf(s, ids)) rows.set(`${s.name}\u0000${row.id}`, row)
      }
      return top.flatMap((r): Array<SearchResult> => {
        const row = rows.get(`${r.source.name}\u0000${r.id}`)
        return row === undefined ? [] : [toResult(r, row)]
      })
    })

  return { hydrate } as const
})
