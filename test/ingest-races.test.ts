import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startTestServer, type TestServer } from "./support/ApiServer.js"
import { tier } from "./support/TestDatabase.js"

const countRows = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const [r] = yield* sql<{ rows: number; ids: number }>`
    SELECT count(*)::int AS rows, count(DISTINCT external_id)::int AS ids FROM messages WHERE external_id LIKE 'race-%'`
  return r
})

/**
 * Clients that write the same messages at the same time: two POST /v1/messages sharing
 * external_ids in opposite orders used to deadlock (33 of 200 requests answered 503).
 */
describe(`concurrent ingests (${tier()})`, () => {
  let server: TestServer

  beforeAll(async () => {
    server = await startTestServer({ workers: false })
  })
  afterAll(async () => {
    await server?.stop()
  })

  const ingest = (messages: ReadonlyArray<{ external_id: string; content: string }>) =>
    fetch(`${server.url}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ messages })
    })

  it("100 rounds of two opposite-order ingests of 20 shared external_ids: no error, one row per id", async () => {
    const statuses: Array<number> = []
    for (let round = 0; round < 100; round++) {
      const batch = Array.from(
        { length: 20 },
        (_, i) => ({ external_id: `race-${round}-${i}`, content: `round ${round} message ${i}` })
      )
      const [a, b] = await Promise.all([ingest(batch), ingest([...batch].reverse())])
      statuses.push(a.status, b.status)
      const [bodyA, bodyB] = await Promise.all([a.json(), b.json()]) as Array<{ ids: Array<number> }>
      // Ids come back in each request's own order: the reversed request got the same ids reversed.
      if (a.status === 201 && b.status === 201) expect(bodyB.ids).toEqual([...bodyA.ids].reverse())
    }
    expect(statuses.filter((s) => s !== 201)).toEqual([])
    const rows = await server.runtime.runPromise(countRows)
    expect(rows).toEqual({ rows: 2000, ids: 2000 })
  }, 180_000)
})
