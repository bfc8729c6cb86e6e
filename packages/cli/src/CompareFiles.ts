import type { CompareInput } from "@autoembed/core"
import { Effect } from "effect"
import { usage } from "./CliExit.js"

/**
 * The files of `sets compare --queries q.jsonl --qrels r.tsv`, in BEIR's format: one JSON object
 * per line with `_id` (or `id`) and `text`; qrels as `query-id<TAB>corpus-id<TAB>score` with an
 * optional header line (TREC's four columns `query-id 0 corpus-id score` are read too). A corpus id
 * is the row's id in the source.
 */

export interface FileQuery {
  readonly id: string
  readonly text: string
}

const lines = (content: string) =>
  content.split(/\r?\n/).map((text, i) => ({ text: text.trim(), line: i + 1 })).filter((l) => l.text !== "")

export const parseQueries = (path: string, content: string) =>
  Effect.gen(function*() {
    const queries: Array<FileQuery> = []
    for (const { line, text } of lines(content)) {
      const at = `${path}:${line}`
      let value: unknown
      try {
        value = JSON.parse(text)
      } catch {
        return yield* usage(`${at}: not a JSON object (the queries file has one {"_id", "text"} object a line)`)
      }
      const { _id, id, text: query } = (typeof value === "object" && value !== null ? value : {}) as Record<
        string,
        unknown
      >
      const key = _id ?? id
      if ((typeof key !== "string" && typeof key !== "number") || typeof query !== "string") {
        return yield* usage(`${at}: a query needs "_id" and "text"`)
      }
      queries.push({ id: String(key), text: query })
    }
    if (queries.length === 0) return yield* usage(`${path} has no queries`)
    return queries
  })

/** query id → corpus id → relevance. */
export type Qrels = ReadonlyMap<string, Readonly<Record<string, number>>>

export const parseQrels = (path: string, content: string) =>
  Effect.gen(function*() {
    const qrels = new Map<string, Record<string, number>>()
    for (const { line, text } of lines(content)) {
      const cells = text.split(/\s+/)
      const [query, doc, score] = cells.length === 4 ? [cells[0], cells[2], cells[3]] : cells
      const relevance = Number(score)
      if (cells.length < 3 || cells.length > 4 || score === undefined || !/^-?\d+(\.\d+)?$/.test(score)) {
        // The first line may name the columns (BEIR's "query-id corpus-id score").
        if (line === 1) continue
        return yield* usage(`${path}:${line}: expected query-id, corpus-id and a numeric score, tab-separated`)
      }
      qrels.set(query, { ...qrels.get(query), [doc]: relevance })
    }
    if (qrels.size === 0) return yield* usage(`${path} has no judgements`)
    return qrels as Qrels
  })

/**
 * The queries of a comparison: with judgements, only the judged ones (as BEIR evaluates), each with
 * its relevant rows; without, every query for overlap and latency alone.
 */
export const compareQueries = (
  queries: ReadonlyArray<FileQuery>,
  qrels: Qrels | undefined,
  files: { readonly queries: string; readonly qrels?: string | undefined }
) =>
  Effect.gen(function*() {
    if (qrels === undefined) return queries.map((q): CompareQuery => ({ text: q.text }))
    const judged = queries.filter((q) => qrels.has(q.id))
    if (judged.length === 0) {
      return yield* usage(`No query of ${files.queries} has a judgement in ${files.qrels}: do their query ids match?`)
    }
    return judged.map((q): CompareQuery => ({ text: q.text, relevant: qrels.get(q.id) }))
  })

type CompareQuery = NonNullable<CompareInput["queries"]>[number]
