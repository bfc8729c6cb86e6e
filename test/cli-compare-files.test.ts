import { Effect, Either } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { describe, expect, it } from "vitest"
import { compareQueries, parseQrels, parseQueries } from "../packages/cli/src/CompareFiles.js"

const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runSync(Effect.either(effect))
const message = <A>(result: Either.Either<A, { message: string }>) =>
  Either.match(result, { onLeft: (e) => e.message, onRight: () => "no error" })

/** The files of `pnpm cli sets compare --queries --qrels`: BEIR's format, and mistakes named by file and line. */
describe("sets compare files", () => {
  it("reads BEIR queries (_id or id) and qrels with a header line; only judged queries are compared", () => {
    const queries = run(parseQueries(
      "q.jsonl",
      `{"_id": "1", "text": "glacier hiking"}\n\n{"id": 2, "text": "invoice overdue"}\r\n` +
        `{"_id": "3", "text": "unjudged"}\n`
    ))
    const qrels = run(parseQrels("r.tsv", "query-id\tcorpus-id\tscore\n1\t10\t1\n1\t11\t2\n2\t20\t1\n"))
    expect(Either.isRight(queries) && Either.isRight(qrels)).toBe(true)
    if (Either.isLeft(queries) || Either.isLeft(qrels)) return
    expect(queries.right).toEqual([
      { id: "1", text: "glacier hiking" },
      { id: "2", text: "invoice overdue" },
      { id: "3", text: "unjudged" }
    ])
    expect(run(compareQueries(queries.right, qrels.right, { queries: "q.jsonl", qrels: "r.tsv" }))).toEqual(
      Either.right([
        { text: "glacier hiking", relevant: { "10": 1, "11": 2 } },
        { text: "invoice overdue", relevant: { "20": 1 } }
      ])
    )
    // Without judgements every query counts, for overlap and latency.
    expect(run(compareQueries(queries.right, undefined, { queries: "q.jsonl" }))).toEqual(
      Either.right([{ text: "glacier hiking" }, { text: "invoice overdue" }, { text: "unjudged" }])
    )
  })

  it("reads TREC's four-column qrels", () => {
    expect(run(parseQrels("r.txt", "7 0 doc-1 1\n7 0 doc-2 0\n"))).toEqual(
      Either.right(new Map([["7", { "doc-1": 1, "doc-2": 0 }]]))
    )
  })

  it("names the file and line of a mistake", () => {
    expect(message(run(parseQueries("q.jsonl", `{"_id": "1", "text": "a"}\nnot json\n`)))).toBe(
      `q.jsonl:2: not a JSON object (the queries file has one {"_id", "text"} object a line)`
    )
    expect(message(run(parseQueries("q.jsonl", `{"_id": "1"}\n`)))).toBe(`q.jsonl:1: a query needs "_id" and "text"`)
    expect(message(run(parseQueries("q.jsonl", "\n\n")))).toBe("q.jsonl has no queries")
    expect(message(run(parseQrels("r.tsv", "q\td\tscore\n1\t2\thigh\n")))).toBe(
      "r.tsv:2: expected query-id, corpus-id and a numeric score, tab-separated"
    )
    expect(message(run(parseQrels("r.tsv", "query-id\tcorpus-id\tscore\n")))).toBe("r.tsv has no judgements")
    expect(
      message(run(compareQueries([{ id: "9", text: "x" }], new Map([["1", { a: 1 }]]), {
        queries: "q.jsonl",
        qrels: "r.tsv"
      })))
    ).toBe("No query of q.jsonl has a judgement in r.tsv: do their query ids match?")
  })

  it("reads the SciFact files of the shared data, when present", () => {
    const dir = Path.resolve(import.meta.dirname, "../../shared/data/scifact")
    if (!Fs.existsSync(Path.join(dir, "qrels.tsv"))) return
    const queries = Effect.runSync(
      parseQueries("queries.jsonl", Fs.readFileSync(Path.join(dir, "queries.jsonl"), "utf8"))
    )
    const qrels = Effect.runSync(parseQrels("qrels.tsv", Fs.readFileSync(Path.join(dir, "qrels.tsv"), "utf8")))
    const judged = Effect.runSync(compareQueries(queries, qrels, { queries: "queries.jsonl", qrels: "qrels.tsv" }))
    // SOURCE.md: 300 queries, every one judged, 339 pairs.
    expect(judged).toHaveLength(300)
    expect(judged.reduce((n, q) => n + Object.keys(q.relevant ?? {}).length, 0)).toBe(339)
  })
})
