import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Extraction } from "../packages/core/src/knowledge/Extraction.js"
import { embedLocal } from "../packages/core/src/providers/LocalProvider.js"
import { pipelineLayer, waitUntilIdle } from "./support/Pipeline.js"
import { tier } from "./support/TestDatabase.js"

const parseVector = (s: string) => JSON.parse(s) as Array<number>
const close = (a: ReadonlyArray<number>, b: ReadonlyArray<number>) =>
  a.length === b.length && a.every((x, i) => Math.abs(x - b[i]) < 1e-6)

describe(`pipeline (${tier()})`, () => {
  layer(pipelineLayer(), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("an extraction's atoms and messages are all embedded with no further call", () =>
      Effect.gen(function*() {
        const extraction = yield* Extraction
        const sql = yield* SqlClient.SqlClient
        const { ids } = yield* extraction.ingestMessages({
          messages: [
            { content: "The deploy failed because the migration locked the users table" },
            { content: "We should run migrations concurrently next time", externalId: "tg-2" }
          ]
        })
        const result = yield* extraction.persist({
          messageIds: ids,
          topics: [{ name: "deploys", description: "Release engineering" }],
          atoms: [
            {
              type: "problem",
              title: "Migration locks users table",
              content: "ALTER TABLE took an exclusive lock during deploy."
            },
            {
              type: "solution",
              title: "Concurrent index builds",
              content: "Use CREATE INDEX CONCURRENTLY.",
              links: [{ to: "Migration locks users table", relation: "solves" }]
            },
            {
              type: "decision",
              title: "Review migrations",
              content: "Every migration gets a lock review.",
              confidence: 0.8
            }
          ]
        })
        expect(result.atomIds).toHaveLength(3)
        expect(yield* waitUntilIdle()).toBe(0)
        const atoms = yield* sql<
          { id: number; title: string; content: string; embedding: string; embedding_model: string }
        >`
          SELECT id, title, content, embedding::text AS embedding, r.model AS embedding_model
          FROM atoms JOIN autoembed.rows r ON r.source = 'atoms' AND r.row_id = atoms.id::text
          WHERE id = ANY(${result.atomIds}::bigint[])`
        expect(atoms).toHaveLength(3)
        for (const a of atoms) {
          expect(a.embedding_model).toBe("local/local-hash-v1")
          expect(close(parseVector(a.embedding), embedLocal(`${a.title}\n\n${a.content}`, 256))).toBe(true)
        }
        const messages = yield* sql<{ embedding: string | null; topic_id: number | null; content: string }>`
          SELECT embedding::text AS embedding, topic_id, content FROM messages WHERE id = ANY(${ids}::bigint[])`
        expect(messages.every((m) => m.embedding !== null && m.topic_id === result.topicIds[0])).toBe(true)
        for (const m of messages) expect(close(parseVector(m.embedding!), embedLocal(m.content, 256))).toBe(true)
        const links = yield* sql`SELECT relation FROM atom_links`
        expect(links).toEqual([{ relation: "solves" }])
        // Re-sending an external_id does not duplicate the message.
        const again = yield* extraction.ingestMessages({
          messages: [{ content: "We should run migrations concurrently next time", externalId: "tg-2" }]
        })
        expect(again.ids).toEqual([ids[1]])
      }))

    it.effect("a changed atom gets a new version and a new vector", () =>
      Effect.gen(function*() {
        const extraction = yield* Extraction
        const sql = yield* SqlClient.SqlClient
        const first = yield* extraction.persist({
          atoms: [{ type: "insight", title: "Caching", content: "Cache the query embeddings." }]
        })
        yield* waitUntilIdle()
        const second = yield* extraction.persist({
          atoms: [{ type: "insight", title: "Caching", content: "Cache query embeddings in a bounded LRU." }]
        })
        expect(second.atomIds).toEqual(first.atomIds)
        expect(yield* waitUntilIdle()).toBe(0)
        const [row] = yield* sql<
          { version: number; embedding: string }
        >`SELECT version, embedding::text AS embedding FROM atoms WHERE id = ${first.atomIds[0]}`
        expect(row.version).toBe(2)
        expect(
          close(parseVector(row.embedding), embedLocal("Caching\n\nCache query embeddings in a bounded LRU.", 256))
        ).toBe(true)
        const versions = yield* sql`SELECT version FROM atom_versions WHERE atom_id = ${
          first.atomIds[0]
        } ORDER BY version`
        expect(versions).toEqual([{ version: 1 }, { version: 2 }])
      }))

    it.effect("rows written straight into the table by another writer are embedded too", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        // With triggers bypassed (as a restore or replication would), only the sweeper can find them.
        yield* sql.withTransaction(Effect.gen(function*() {
          yield* sql`SET LOCAL session_replication_role = replica`
          yield* sql`INSERT INTO messages (content) SELECT 'restored message ' || g FROM generate_series(1, 20) g`
        }))
        const [pendingBefore] = yield* sql<
          { n: number }
        >`SELECT count(*)::int AS n FROM autoembed.queue WHERE source = 'messages'`
        expect(pendingBefore.n).toBe(0)
        // Plain inserts from another writer go through the trigger.
        yield* sql`INSERT INTO atoms (type, title, content) VALUES ('note', 'from psql', 'typed by hand')`
        yield* Effect.sleep("1500 millis")
        expect(yield* waitUntilIdle()).toBe(0)
        const [left] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM messages WHERE embedding IS NULL`
        const [atomLeft] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM atoms WHERE embedding IS NULL`
        expect(left.n + atomLeft.n).toBe(0)
      }))
  })
})
