import * as SqlClient from "@effect/sql/SqlClient"
import type { Fragment } from "@effect/sql/Statement"
import { Effect } from "effect"
import { stateTables } from "../State.js"

/**
 * The corpus statistics BM25 needs, per source, kept exact by statement-level triggers on
 * autoembed's own `rows` (the table every vector write, adoption and delete goes through): the
 * number of documents and their total length, and each lexeme's document frequency. A document's
 * length is the number of positions in its tsvector (its indexed words, stop words left out), kept
 * in a generated column of `rows`.
 *
 * Statement-level with transition tables: one upsert per written batch instead of one per row, its
 * lexemes taken in sorted order so concurrent batches never deadlock on them. Nothing is added to
 * the user's tables, and no extension is needed (PGlite runs it as PostgreSQL does).
 */
export default (schema: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const t = stateTables(sql, schema)
    yield* sql`
      CREATE TABLE IF NOT EXISTS ${t.bm25Stats} (
        source text PRIMARY KEY,
        docs bigint NOT NULL DEFAULT 0,
        total_length bigint NOT NULL DEFAULT 0
      )`
    yield* sql`
      CREATE TABLE IF NOT EXISTS ${t.bm25Terms} (
        source text NOT NULL,
        lexeme text NOT NULL,
        df bigint NOT NULL,
        PRIMARY KEY (source, lexeme)
      )`
    yield* sql`
      CREATE OR REPLACE FUNCTION ${t.tsvLength}(tsv tsvector) RETURNS integer
      LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
        SELECT coalesce(sum(coalesce(array_length(u.positions, 1), 1)), 0)::integer FROM unnest(tsv) u
      $fn$`
    // Each row's length, stored: a query reads it instead of unnesting every matching tsvector.
    yield* sql`ALTER TABLE ${t.rows}
      ADD COLUMN IF NOT EXISTS tsv_length integer GENERATED ALWAYS AS (${t.tsvLength}(tsv)) STORED`
    // `d` is the change: +1 for each new row version, -1 for each old one; an update that leaves a
    // row's tsvector as it was cancels out (and is filtered before the upsert).
    const apply = (changes: Fragment) =>
      sql`
      INSERT INTO ${t.bm25Stats} AS s (source, docs, total_length)
      SELECT source, sum(d), sum(d * tsv_length) FROM (${changes}) c WHERE tsv IS NOT NULL
      GROUP BY source HAVING sum(d) <> 0 OR sum(d * tsv_length) <> 0 ORDER BY source
      ON CONFLICT (source) DO UPDATE
        SET docs = s.docs + EXCLUDED.docs, total_length = s.total_length + EXCLUDED.total_length;
      INSERT INTO ${t.bm25Terms} AS k (source, lexeme, df)
      SELECT source, lexeme, sum(d)
      FROM (SELECT c.source, c.d, unnest(tsvector_to_array(c.tsv)) AS lexeme FROM (${changes}) c) l
      GROUP BY source, lexeme HAVING sum(d) <> 0 ORDER BY source, lexeme
      ON CONFLICT (source, lexeme) DO UPDATE SET df = k.df + EXCLUDED.df;`
    const inserted = sql`SELECT source, tsv, tsv_length, 1 AS d FROM ae_new`
    const deleted = sql`SELECT source, tsv, tsv_length, -1 AS d FROM ae_old`
    yield* sql`
      CREATE OR REPLACE FUNCTION ${t.bm25Apply}() RETURNS trigger LANGUAGE plpgsql AS $fn$
      BEGIN
        IF TG_OP = 'INSERT' THEN
          ${apply(inserted)}
        ELSIF TG_OP = 'DELETE' THEN
          ${apply(deleted)}
        ELSE
          ${apply(sql`${inserted} UNION ALL ${deleted}`)}
        END IF;
        RETURN NULL;
      END
      $fn$`
    const triggers = [
      { name: "bm25_insert", event: sql`INSERT`, transition: sql`NEW TABLE AS ae_new` },
      { name: "bm25_delete", event: sql`DELETE`, transition: sql`OLD TABLE AS ae_old` },
      { name: "bm25_update", event: sql`UPDATE`, transition: sql`OLD TABLE AS ae_old NEW TABLE AS ae_new` }
    ]
    for (const trigger of triggers) {
      yield* sql`DROP TRIGGER IF EXISTS ${sql(trigger.name)} ON ${t.rows}`
      yield* sql`
        CREATE TRIGGER ${sql(trigger.name)} AFTER ${trigger.event} ON ${t.rows}
        REFERENCING ${trigger.transition} FOR EACH STATEMENT EXECUTE FUNCTION ${t.bm25Apply}()`
    }
    // Rows embedded before this migration: counted once, from scratch.
    yield* sql`
      INSERT INTO ${t.bm25Stats} (source, docs, total_length)
      SELECT source, count(*), sum(tsv_length) FROM ${t.rows} WHERE tsv IS NOT NULL GROUP BY source
      ON CONFLICT (source) DO NOTHING`
    yield* sql`
      INSERT INTO ${t.bm25Terms} (source, lexeme, df)
      SELECT source, lexeme, count(*) FROM ${t.rows}, unnest(tsvector_to_array(tsv)) AS lexeme
      WHERE tsv IS NOT NULL GROUP BY source, lexeme
      ON CONFLICT (source, lexeme) DO NOTHING`
  })
