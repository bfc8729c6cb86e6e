/**
 * Figure 4, search: HNSW vs exact on N clustered synthetic 1024-d vectors on the PostgreSQL server.
 *
 * Data: K cluster centres (unit Gaussian directions, seeded), each row = normalise(centre + σ·g)
 * with g standard normal per dimension, generated inside PostgreSQL (no 400 MB over the wire) in a
 * table shaped like a source with its own vector column (id, embedding vector(1024)), each row
 * recorded with its model in a table shaped like autoembed's bookkeeping (autoembed.rows: source,
 * row_id, model, hash; written in the same statement, as writeVectors does). The HNSW index is
 * built after the load with our defaults (m 16, ef_construction 64, cosine) and
 * maintenance_work_mem 1GB. Queries: Q vectors drawn the same way around random centres (node
 * side, seeded).
 *
 * The query is Search's vector query (same join on the bookkeeping for the model, WHERE, ORDER BY,
 * LIMIT 10, same transaction-local settings: hnsw.ef_search, iterative_scan relaxed_order,
 * enable_seqscan off); exact is the same query with enable_indexscan off (what
 * `Search.search(..., { exact: true })` does). Timed: the SELECT round trip only (no query
 * embedding). Recall@10: |HNSW top-10 ∩ exact top-10| / 10.
 *
 *   pnpm bench search [--rows 100000] [--queries 50] [--passes 3]
 */
import pg from "pg"
import {
  createScratchDatabase,
  describeServer,
  figure,
  fmt,
  fmtSummary,
  gaussian,
  goal,
  note,
  numberFlag,
  percentile,
  randomUnitVector,
  rng,
  runIfMain,
  summarize,
  writeResult
} from "./lib.js"

const DIMS = 1024
const MODEL = "bench/clustered-1024"

const literal = (v: ReadonlyArray<number>) => "[" + v.map((x) => x.toPrecision(8)).join(",") + "]"

/** Search's vectorQuery for a source with its own vector column: rows of the current model only. */
const QUERY = `SELECT t.id::text AS id, 1 - (t.embedding <=> $1::vector) AS score
  FROM items t JOIN autoembed.rows ae_r ON ae_r.source = 'items' AND ae_r.row_id = t.id::text
  WHERE ae_r.source = 'items' AND ae_r.model = $2 AND t.embedding IS NOT NULL
  ORDER BY t.embedding <=> $1::vector LIMIT 10`

export const main = async (args: ReadonlyArray<string> = []) => {
  const rows = numberFlag(args, "rows", 100_000)
  const clusters = numberFlag(args, "clusters", 100)
  const sigma = numberFlag(args, "sigma", 0.03)
  const nQueries = numberFlag(args, "queries", 50)
  const passes = numberFlag(args, "passes", 3)
  const efs = [40, 100]
  const scratch = await createScratchDatabase("search")
  console.log(
    `search: ${
      rows.toLocaleString("en-US")
    } rows × ${DIMS}-d, ${clusters} clusters (σ ${sigma} per dimension), ${nQueries} queries, ` +
      `HNSW ${passes} passes, exact 1 pass; on ${describeServer()} (scratch database)`
  )
  const clients: Array<pg.Client> = []
  const connect = async () => {
    const c = new pg.Client({ connectionString: scratch.url })
    await c.connect()
    clients.push(c)
    return c
  }
  try {
    const db = await connect()
    await db.query("CREATE EXTENSION IF NOT EXISTS vector")
    await db.query(`CREATE TABLE items (id bigint PRIMARY KEY, cluster int NOT NULL, embedding vector(${DIMS}))`)
    // autoembed.rows as its migration creates it (key and (source, model) index; the tsv column stays empty here).
    await db.query("CREATE SCHEMA autoembed")
    await db.query(
      `CREATE TABLE autoembed.rows (source text NOT NULL, row_id text NOT NULL, model text NOT NULL, hash text NOT NULL,
         tsv tsvector,
         embedded_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (source, row_id))`
    )
    await db.query("CREATE INDEX rows_model_idx ON autoembed.rows (source, model)")
    await db.query(`CREATE TABLE centres (c int PRIMARY KEY, v vector(${DIMS}))`)
    const normal = gaussian(rng(7))
    const centres = Array.from({ length: clusters }, () => randomUnitVector(DIMS, normal))
    for (let c = 0; c < clusters; c++) {
      await db.query("INSERT INTO centres VALUES ($1, $2::vector)", [c, literal(centres[c])])
    }

    // Load, in two parallel halves (2 cores), all generation server-side.
    let t = performance.now()
    const writers = [await connect(), await connect()]
    const half = Math.ceil(rows / 2)
    await Promise.all(writers.map((w, k) =>
      w.query(
        `WITH w AS (
           INSERT INTO items (id, cluster, embedding)
           SELECT i, i % $3, l2_normalize(c.v + (
             SELECT array_agg($4 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))::vector(${DIMS})
             FROM generate_series(1, ${DIMS}) WHERE i >= 0))
           FROM generate_series($1::int, $2::int) i JOIN centres c ON c.c = i % $3
           RETURNING id)
         INSERT INTO autoembed.rows (source, row_id, model, hash)
         SELECT 'items', w.id::text, $5, md5(w.id::text) FROM w`,
        [k * half + 1, Math.min(rows, (k + 1) * half), clusters, sigma, MODEL]
      )
    ))
    const loadSeconds = (performance.now() - t) / 1000
    await db.query("VACUUM ANALYZE items, autoembed.rows")
    note(`loaded ${rows.toLocaleString("en-US")} rows in ${fmt(loadSeconds)} s`)

    t = performance.now()
    await db.query("SET maintenance_work_mem = '1GB'")
    await db.query(
      `CREATE INDEX items_hnsw ON items USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)`
    )
    const buildSeconds = (performance.now() - t) / 1000
    const [{ workers }] = (await db.query("SELECT current_setting('max_parallel_maintenance_workers') AS workers")).rows
    note(
      `HNSW build (m 16, ef_construction 64, maintenance_work_mem 1GB, max_parallel_maintenance_workers ${workers}): ${
        fmt(buildSeconds)
      } s`
    )

    const qNormal = gaussian(rng(11))
    const qPick = rng(13)
    const queries = Array.from({ length: nQueries }, () => {
      const c = centres[Math.floor(qPick() * clusters)]
      const v = c.map((x) => x + sigma * qNormal())
      let n = 0
      for (const x of v) n += x * x
      return literal(v.map((x) => x / Math.sqrt(n)))
    })

    /** One query inside a transaction with Search's settings; returns ids and the SELECT's time. */
    const runQuery = async (q: string, mode: { exact: true } | { ef: number }) => {
      await db.query("BEGIN")
      if ("exact" in mode) await db.query("SELECT set_config('enable_indexscan', 'off', true)")
      else {
        await db.query(
          "SELECT set_config('hnsw.ef_search', $1, true), set_config('hnsw.iterative_scan', 'relaxed_order', true), " +
            "set_config('enable_seqscan', 'off', true)",
          [String(mode.ef)]
        )
      }
      const t0 = process.hrtime.bigint()
      const r = await db.query<{ id: string }>(QUERY, [q, MODEL])
      const ms = Number(process.hrtime.bigint() - t0) / 1e6
      await db.query("COMMIT")
      return { ids: r.rows.map((x) => x.id), ms }
    }

    // Check the plans once: the index for HNSW, none for exact.
    const plan = async (exact: boolean) => {
      await db.query("BEGIN")
      await db.query(
        exact
          ? "SELECT set_config('enable_indexscan', 'off', true)"
          : "SELECT set_config('hnsw.ef_search', '100', true), set_config('enable_seqscan', 'off', true)"
      )
      const r = await db.query(`EXPLAIN ${QUERY}`, [queries[0], MODEL])
      await db.query("COMMIT")
      return r.rows.map((x: Record<string, string>) => x["QUERY PLAN"]).join(" | ")
    }
    const hnswPlan = await plan(false)
    const exactPlan = await plan(true)
    if (!hnswPlan.includes("items_hnsw") || exactPlan.includes("items_hnsw")) {
      throw new Error(`unexpected plans: ${hnswPlan} // ${exactPlan}`)
    }

    // Warm the cache for both paths (the table is ~450 MB; shared_buffers is small, the OS cache is not).
    for (const q of queries.slice(0, 5)) {
      await runQuery(q, { ef: 100 })
      await runQuery(q, { exact: true })
    }

    t = performance.now()
    const truth: Array<Array<string>> = []
    const exactMs: Array<number> = []
    for (const q of queries) {
      const r = await runQuery(q, { exact: true })
      truth.push(r.ids)
      exactMs.push(r.ms)
    }
    note(
      `exact: ${nQueries} queries in ${fmt((performance.now() - t) / 1000)} s, p50 ${
        fmt(percentile(exactMs, 50))
      } ms, p95 ${fmt(percentile(exactMs, 95))} ms`
    )

    const byEf: Record<
      string,
      {
        recall: number
        p50: ReturnType<typeof summarize>
        p95: ReturnType<typeof summarize>
        speedupP50: ReturnType<typeof summarize>
        speedupP95: ReturnType<typeof summarize>
      }
    > = {}
    const exactP50 = percentile(exactMs, 50)
    const exactP95 = percentile(exactMs, 95)
    for (const ef of efs) {
      const p50s: Array<number> = []
      const p95s: Array<number> = []
      let hits = 0
      for (let pass = 0; pass < passes; pass++) {
        const ms: Array<number> = []
        for (let i = 0; i < queries.length; i++) {
          const r = await runQuery(queries[i], { ef })
          ms.push(r.ms)
          if (pass === 0) hits += r.ids.filter((id) => truth[i].includes(id)).length
        }
        p50s.push(percentile(ms, 50))
        p95s.push(percentile(ms, 95))
      }
      const recall = hits / (10 * queries.length)
      byEf[ef] = {
        recall,
        p50: summarize(p50s),
        p95: summarize(p95s),
        speedupP50: summarize(p50s.map((x) => exactP50 / x)),
        speedupP95: summarize(p95s.map((x) => exactP95 / x))
      }
      const e = byEf[ef]
      const isDefault = ef === 100
      figure(
        `search.ef${ef}${isDefault ? " (default)" : ""}: recall@10 = ${fmt(recall, 3)}; exact p50 ÷ HNSW p50 = ${
          fmtSummary(e.speedupP50, 1, "×")
        } ` +
          `(${fmt(e.p50.median)} vs ${fmt(exactP50)} ms; p95 ${fmt(e.p95.median)} vs ${fmt(exactP95)} ms = ${
            fmt(e.speedupP95.median, 1)
          }×); ` +
          `${rows.toLocaleString("en-US")} rows × ${DIMS}-d, ${nQueries} queries; postgres` +
          (isDefault
            ? `; recall ${goal(recall >= 0.95)} (≥ 0.95), speed ${goal(e.speedupP50.median >= 10)} (≥ 10×)`
            : "")
      )
    }
    figure(
      `search.build: HNSW build after load = ${fmt(buildSeconds)} s for ${rows.toLocaleString("en-US")} rows (load ${
        fmt(loadSeconds)
      } s); build ÷ load = ${fmt(buildSeconds / loadSeconds)}; postgres`
    )
    const result = {
      database: `${describeServer()} (scratch database)`,
      rows,
      dimensions: DIMS,
      clusters,
      sigma,
      queries: nQueries,
      passes,
      loadSeconds,
      buildSeconds,
      hnsw: { m: 16, efConstruction: 64, maintenanceWorkMem: "1GB", parallelWorkers: Number(workers) },
      exact: { p50Ms: exactP50, p95Ms: exactP95, plan: exactPlan },
      hnswPlan,
      byEfSearch: byEf,
      goal: {
        recallAtDefault: byEf[100]?.recall,
        recallMet: (byEf[100]?.recall ?? 0) >= 0.95,
        speedMet: (byEf[100]?.speedupP50.median ?? 0) >= 10
      }
    }
    writeResult("search", result)
    return result
  } finally {
    for (const c of clients) await c.end().catch(() => undefined)
    await scratch.drop()
  }
}

runIfMain(import.meta.url, main)
