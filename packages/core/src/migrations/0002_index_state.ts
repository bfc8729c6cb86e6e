import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"

/**
 * Marks a source whose HNSW index was dropped for a bulk load. While the mark is there, start-up
 * does not rebuild the index (that is the bulk run's last step); a run that died half-way leaves
 * the mark, and the next backfill or `pnpm cli reindex` finishes the job.
 */
export default Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    CREATE TABLE IF NOT EXISTS autoembed_index_state (
      source text PRIMARY KEY,
      state text NOT NULL,
      started_at timestamptz NOT NULL DEFAULT now(),
      note text
    )`
})
