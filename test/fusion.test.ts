import { describe, expect, it } from "@effect/vitest"
import {
  byScore,
  candidateDepth,
  fuseByScore,
  rankAcrossSources,
  type Ranked,
  shownTextScore
} from "../packages/core/src/search/Fusion.js"
import type { Source } from "../packages/core/src/sources/Sources.js"

const source = (name: string) => ({ name }) as Source

describe("search fusion (pure)", () => {
  it("hybrid asks each list for max(limit × 4, 50) candidates; the other modes for limit", () => {
    expect(candidateDepth("hybrid", 10)).toBe(50)
    expect(candidateDepth("hybrid", 20)).toBe(80)
    expect(candidateDepth("vector", 10)).toBe(10)
    expect(candidateDepth("text", 7)).toBe(7)
  })

  it("a one-row list normalises to 1; fused scores stay in 0..1", () => {
    const fused = fuseByScore([{ id: "a", score: 0.3 }], [{ id: "b", score: 5 }], 0.4)
    expect(Object.fromEntries(fused.map((c) => [c.id, c.score]))).toEqual({ a: 0.4, b: 0.6 })
    expect(fuseByScore([], [], 0.4)).toEqual([])
  })

  it("BM25 scores are shown as s/(s+1); ts_rank's as they are", () => {
    expect(shownTextScore("bm25")({ id: "a", score: 3 }).score).toBe(0.75)
    expect(shownTextScore("ts_rank")({ id: "a", score: 0.3 }).score).toBe(0.3)
  })

  it("ties are broken by source name, then id", () => {
    const a = source("atoms")
    const m = source("messages")
    const rows: Array<Ranked> = [
      { id: "2", score: 0.5, source: m },
      { id: "9", score: 0.5, source: a },
      { id: "1", score: 0.5, source: m },
      { id: "3", score: 0.9, source: m }
    ]
    expect(rows.sort(byScore).map((r) => `${r.source.name}:${r.id}`)).toEqual([
      "messages:3",
      "atoms:9",
      "messages:1",
      "messages:2"
    ])
  })

  it("ranks across sources: per-mode scores, min_score, the limit per source and overall", () => {
    const searched = [source("atoms"), source("messages")]
    const vector = [[{ id: "a1", score: 0.9 }, { id: "a2", score: 0.2 }], [{ id: "m1", score: 0.8 }]]
    const text = [[{ id: "a2", score: 3 }], [{ id: "m1", score: 1 }, { id: "m2", score: 9 }]]
    const base = { limit: 2, vectorWeight: 0.4, textRanking: "bm25" as const }
    const ids = (r: Array<Ranked>) => r.map((x) => `${x.source.name}:${x.id}:${x.score.toFixed(2)}`)
    expect(ids(rankAcrossSources(searched, vector, text, { ...base, mode: "vector" }))).toEqual([
      "atoms:a1:0.90",
      "messages:m1:0.80"
    ])
    expect(ids(rankAcrossSources(searched, vector, text, { ...base, mode: "text" }))).toEqual([
      "messages:m2:0.90",
      "atoms:a2:0.75"
    ])
    expect(ids(rankAcrossSources(searched, vector, text, { ...base, mode: "hybrid", limit: 3 }))).toEqual([
      "atoms:a2:0.60",
      "messages:m2:0.60",
      "atoms:a1:0.40"
    ])
    expect(ids(rankAcrossSources(searched, vector, text, { ...base, mode: "vector", minScore: 0.85 }))).toEqual([
      "atoms:a1:0.90"
    ])
  })
})
