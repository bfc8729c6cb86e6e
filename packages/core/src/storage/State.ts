import type * as SqlClient from "@effect/sql/SqlClient"

/**
 * autoembed's own tables, all in one schema (`AUTOEMBED_SCHEMA`, default `autoembed`), as
 * identifiers quoted by the SQL client. Nothing of this lives in the user's schemas.
 */
export const stateTables = (sql: SqlClient.SqlClient, schema: string) => ({
  schema: sql(schema),
  /** Pending work: one row per source row to embed, written by the triggers. */
  queue: sql(`${schema}.queue`),
  /** Per-row bookkeeping: model, content hash, full-text vector, when embedded. */
  rows: sql(`${schema}.rows`),
  jobs: sql(`${schema}.backfill_jobs`),
  /** Bulk-load marks of vector indexes. */
  indexState: sql(`${schema}.index_state`),
  /** What was installed for each source (tables, triggers, owned indexes), for uninstall and removal. */
  registry: sql(`${schema}.sources`),
  enqueue: sql(`${schema}.enqueue`),
  /** Embedding sets: every model a source is embedded with, and which one search uses. */
  sets: sql(`${schema}.sets`),
  /** The provider circuit breaker, per model key, shared by every worker. */
  circuits: sql(`${schema}.circuits`),
  /** One heartbeat row per live worker process. */
  workers: sql(`${schema}.workers`),
  /** BM25's corpus statistics: documents and total length per source, document frequency per lexeme. */
  bm25Stats: sql(`${schema}.bm25_stats`),
  bm25Terms: sql(`${schema}.bm25_terms`),
  bm25Apply: sql(`${schema}.bm25_apply`),
  /** A tsvector's length for BM25: its number of positions (indexed words). */
  tsvLength: sql(`${schema}.tsv_length`),
  /** Input tokens sent to the providers per hour, source, set, model and kind (the token and cost ledger). */
  ledger: sql(`${schema}.token_ledger`),
  /** The table that holds a source's vectors when it has no vector column of its own. */
  vectors: (source: string) => sql(`${schema}.${vectorTableName(source)}`)
})

export type StateTables = ReturnType<typeof stateTables>

export const vectorTableName = (source: string) => `${source}_vectors`

/** The migration history's table, inside the state schema. */
export const migrationsTable = (schema: string) => `${schema}.migrations`
