import type { Source } from "../sources/Sources.js"

/** One row of one ranked list. */
export interface Candidate {
  readonly id: string
  readonly score: number
}

/** A candidate of a given source, ready to be ranked against other sources' rows. */
export interface Ranked extends Candidate {
  readonly source: Source
}

/** Candidates per list and source in hybrid mode: max(limit × factor, minimum). */
export const HYBRID_DEPTH_FACTOR = 4
export const HYBRID_DEPTH_MIN = 50

/** How many candidates each list of a source is asked for. */
export const candidateDepth = (mode: "vector" | "hybrid" | "text", limit: number): number =>
  mode === "hybrid" ? Math.max(limit * HYBRID_DEPTH_FACTOR, HYBRID_DEPTH_MIN) : limit

/**
 * Hybrid fusion: a convex combination of min-max normalised scores (Bruch et al. 2022),
 * α·vector + (1 − α)·text, α = AUTOEMBED_HYBRID_VECTOR_WEIGHT (0.4); a row absent from a list has 0
 * there. Chosen by `pnpm eval` (bench/results/eval.md, Local provider): with BM25 as the text leg,
 * SciFact nDCG@10 0.685 against 0.635 for reciprocal rank fusion (k 60) and 0.671 for the best
 * weighted RRF; Cranfield 0.522 against 0.512. RRF weighs a weak leg's ranks as much as a strong
 * one's; scores keep how sure each leg is. Result scores lie in 0..1.
 */
export const fuseByScore = (
  vector: ReadonlyArray<Candidate>,
  text: ReadonlyArray<Candidate>,
  alpha: number
): Array<Candidate> => {
  const normalised = (list: ReadonlyArray<Candidate>) => {
    const max = Math.max(...list.map((c) => c.score))
    const min = Math.min(...list.map((c) => c.score))
    return new Map(list.map((c) => [c.id, max > min ? (c.score - min) / (max - min) : 1]))
  }
  const v = normalised(vector)
  const t = normalised(text)
  return [...new Set([...v.keys(), ...t.keys()])].map((id) => ({
    id,
    score: alpha * (v.get(id) ?? 0) + (1 - alpha) * (t.get(id) ?? 0)
  }))
}

/** ts_rank's scores are in 0..1 already (flag 32); a BM25 score s is shown as s/(s+1). */
export const shownTextScore = (textRanking: "bm25" | "ts_rank") => (c: Candidate): Candidate =>
  textRanking === "ts_rank" ? c : { id: c.id, score: c.score / (c.score + 1) }

/** Best score first; ties by source name, then id, so equal scores always come back in one order. */
export const byScore = (a: Ranked, b: Ranked): number =>
  b.score - a.score || (a.source.name < b.source.name ? -1 : a.source.name > b.source.name ? 1 : 0) ||
  (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)

export interface RankOptions {
  readonly mode: "vector" | "hybrid" | "text"
  readonly limit: number
  readonly minScore?: number | undefined
  /** α of `fuseByScore`. */
  readonly vectorWeight: number
  readonly textRanking: "bm25" | "ts_rank"
}

/**
 * The final ranking: each source's vector and text lists (index-aligned with `searched`) scored for
 * the mode, cut at the minimum score and the limit per source, then merged and cut at the limit.
 */
export const rankAcrossSources = (
  searched: ReadonlyArray<Source>,
  vectorLists: ReadonlyArray<ReadonlyArray<Candidate>>,
  textLists: ReadonlyArray<ReadonlyArray<Candidate>>,
  options: RankOptions
): Array<Ranked> =>
  searched.flatMap((s, i) => {
    const scored = options.mode === "vector"
      ? vectorLists[i]
      : options.mode === "text"
      ? textLists[i].map(shownTextScore(options.textRanking))
      : fuseByScore(vectorLists[i], textLists[i], options.vectorWeight)
    return scored
      .filter((c) => options.minScore === undefined || c.score >= options.minScore)
      .map((c): Ranked => ({ ...c, source: s }))
      .sort(byScore)
      .slice(0, options.limit)
  }).sort(byScore).slice(0, options.limit)
