import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import { existsSync, readFileSync } from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { embedLocal, makeLocalProvider, stem, tokenize } from "../packages/core/src/providers/LocalProvider.js"

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const localProviderFile = path.join(repoRoot, "packages/core/src/providers/LocalProvider.ts")

const SAMPLES = [
  "The quick brown fox",
  "Graphene conducts electricity well.",
  "",
  "β-amyloid 斑块 CO2 émigré",
  "to be or not to be"
]

/** sha256 of the float64 bytes of each sample's 1024-d vector, in order. */
const checksum = (vectors: ReadonlyArray<ReadonlyArray<number>>) => {
  const hash = createHash("sha256")
  for (const v of vectors) hash.update(Buffer.from(new Float64Array(v).buffer))
  return hash.digest("hex")
}

const dot = (a: ReadonlyArray<number>, b: ReadonlyArray<number>) => {
  let s = 0
  for (let i = 0; i < a.length; i++) s += a[i] * b[i]
  return s
}

describe("Local provider", () => {
  it("is bit-identical across processes", () => {
    const here = checksum(SAMPLES.map((t) => embedLocal(t, 1024)))
    const script = `
      import { createHash } from "node:crypto"
      import { embedLocal } from ${JSON.stringify(localProviderFile)}
      const hash = createHash("sha256")
      for (const t of ${JSON.stringify(SAMPLES)}) hash.update(Buffer.from(new Float64Array(embedLocal(t, 1024)).buffer))
      console.log(hash.digest("hex"))
    `
    const child = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: repoRoot,
      encoding: "utf8"
    }).trim()
    expect(child).toBe(here)
    // Pinned: if this changes, the algorithm changed, and LOCAL_MODEL must get a new name.
    expect(here).toBe(PINNED_CHECKSUM)
  })

  it.effect("returns unit vectors of the configured length, in order", () =>
    Effect.gen(function*() {
      const provider = makeLocalProvider(256)
      const vectors = yield* provider.embed(SAMPLES, "query")
      expect(vectors).toHaveLength(SAMPLES.length)
      for (const v of vectors) {
        expect(v).toHaveLength(256)
        expect(Math.abs(dot(v, v) - 1)).toBeLessThan(1e-9)
      }
      // Empty text: a fixed unit vector (a zero vector has no cosine).
      expect(vectors[2]).toEqual(new Array(256).fill(1 / 16))
      // Stop words only still embed their words.
      expect(vectors[4]).not.toEqual(vectors[2])
      expect(yield* provider.embed(["Graphene conducts electricity well."], "document")).toEqual([vectors[1]])
    }))

  it("stems and tokenizes lightly", () => {
    expect(["increase", "increases", "increased", "increasing"].map(stem)).toEqual([
      "increas",
      "increas",
      "increas",
      "increas"
    ])
    expect(["studies", "studied", "study"].map(stem)).toEqual(["study", "study", "study"])
    expect(["activation", "activated", "activate"].map(stem)).toEqual(["activat", "activat", "activat"])
    expect(["stopped", "running", "genes", "gene", "class", "virus"].map(stem)).toEqual([
      "stop",
      "run",
      "gene",
      "gene",
      "class",
      "virus"
    ])
    expect(tokenize("Don't stop: IL-6 and TNF-α!")).toEqual(["don", "stop", "il", "6", "and", "tnf", "α"])
  })

  it("ranks documents that share words with the query first", () => {
    const docs = [
      "Insulin resistance in type 2 diabetes is linked to obesity.",
      "The Roman empire declined over several centuries.",
      "Graphene is a single layer of carbon atoms with high electrical conductivity.",
      "Football clubs compete in national leagues."
    ]
    const vectors = docs.map((d) => embedLocal(d, 1024))
    const rank = (q: string) => {
      const v = embedLocal(q, 1024)
      return vectors.map((d, i) => [dot(d, v), i] as const).sort((a, b) => b[0] - a[0])[0][1]
    }
    expect(rank("conductivity of graphene layers")).toBe(2)
    expect(rank("does obesity cause insulin resistance?")).toBe(0)
    expect(rank("decline of the Roman Empire")).toBe(1)
  })

  // Speed is a benchmark's business (a timed assertion flakes on a busy machine); this checks the result at scale.
  it("embeds 5,000 abstract-sized texts into distinct unit vectors", () => {
    const words =
      ("protein cell gene expression tumour patient clinical trial mouse model receptor signalling pathway " +
        "inhibitor dose response cohort risk factor mortality infection vaccine antibody").split(" ")
    const texts = Array.from(
      { length: 5000 },
      (_, i) =>
        `${i} ` +
        Array.from({ length: 220 }, (_, j) => words[(i * 7 + j * 13 + ((i * j) % 11)) % words.length]).join(" ")
    )
    const seen = new Set<string>()
    for (const t of texts) {
      const v = embedLocal(t, 1024)
      expect(v).toHaveLength(1024)
      expect(Math.abs(Math.hypot(...v) - 1)).toBeLessThan(1e-6)
      seen.add(v.map((x) => x.toFixed(6)).join(","))
    }
    expect(seen.size).toBe(5000)
  })
})

const scifact = path.resolve(repoRoot, "../shared/data/scifact")

describe("Local provider on SciFact", () => {
  it.skipIf(!existsSync(scifact))("finds a relevant abstract in the top 10 for most queries", () => {
    const lines = (file: string) =>
      readFileSync(path.join(scifact, file), "utf8").split("\n").filter((l) => l.trim() !== "")
    const corpus = lines("corpus.jsonl").map((l) => JSON.parse(l) as { id: string; title: string; text: string })
    const queries = lines("queries.jsonl").map((l) => JSON.parse(l) as { id: string; text: string })
    const relevant = new Map<string, Set<string>>()
    for (const line of lines("qrels.tsv").slice(1)) {
      const [q, d] = line.split("\t")
      relevant.set(q, (relevant.get(q) ?? new Set()).add(d))
    }
    const docs = corpus.map((d) => embedLocal(`${d.title}\n${d.text}`, 1024))
    let hits = 0
    let asked = 0
    for (const q of queries) {
      const rel = relevant.get(q.id)
      if (rel === undefined) continue
      asked++
      const v = embedLocal(q.text, 1024)
      const top = docs.map((d, i) => [dot(d, v), i] as const).sort((a, b) => b[0] - a[0]).slice(0, 10)
      if (top.some(([, i]) => rel.has(corpus[i].id))) hits++
    }
    const rate = hits / asked
    console.log(
      `SciFact (Local provider, 1024-d, cosine): relevant doc in top 10 for ${hits}/${asked} queries = ${
        rate.toFixed(3)
      }`
    )
    expect(rate).toBeGreaterThan(0.5)
  })
  it.skipIf(existsSync(scifact))("skipped: no SciFact data", () => {
    console.log(`SciFact evaluation skipped: ${scifact} does not exist`)
  })
})

const PINNED_CHECKSUM = "fc2770dfb9ec4f48e9b05baa77d4e6dcb9334698b812759bc1bfc54588ef4662"
