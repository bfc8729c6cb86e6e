import { describe, expect, it } from "@effect/vitest"
import { assembleJob, type JobRecord } from "../packages/core/src/pipeline/BackfillJobs.js"

const record: JobRecord = {
  id: "bf_1",
  state: "running",
  phase: "embedding",
  bulkTypes: [],
  entityTypes: ["atoms"],
  total: 1000,
  processed: 250,
  succeeded: 240,
  failed: 0,
  skipped: 10,
  error: null,
  startedAt: Date.parse("2024-05-01T10:00:00Z"),
  finishedAt: null
}

describe("backfill jobs (pure)", () => {
  it("a running job's rate and ETA are measured up to now", () => {
    const job = assembleJob(record, record.startedAt + 10_000)
    expect(job).toMatchObject({
      phase: "embedding",
      ratePerSecond: 25,
      etaSeconds: 30,
      elapsedSeconds: 10,
      startedAt: "2024-05-01T10:00:00.000Z",
      finishedAt: null
    })
    expect(assembleJob(record, record.startedAt).etaSeconds).toBeNull()
  })

  it("a finished job is done: no ETA, its clock stops at its finish", () => {
    const job = assembleJob(
      { ...record, state: "cancelled", processed: 500, finishedAt: record.startedAt + 20_000 },
      record.startedAt + 99_000
    )
    expect(job).toMatchObject({
      state: "cancelled",
      phase: "done",
      etaSeconds: 0,
      elapsedSeconds: 20,
      ratePerSecond: 25,
      finishedAt: "2024-05-01T10:00:20.000Z"
    })
  })
})
