import { describe, expect, it } from "@effect/vitest"
import { assembleJob, type JobRecord } from "../packages/core/src/pipeline/BackfillJobs.js"

const record: JobRecord = {
  id: "bf_1",
  state: "running",
  phase: "embedding",
  bulk_types: [],
  entity_types: ["atoms"],
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
      rate_per_second: 25,
      eta_seconds: 30,
      elapsed_seconds: 10,
      started_at: "2024-05-01T10:00:00.000Z",
      finished_at: null
    })
    expect(assembleJob(record, record.startedAt).eta_seconds).toBeNull()
  })

  it("a finished job is done: no ETA, its clock stops at its finish", () => {
    const job = assembleJob(
      { ...record, state: "cancelled", processed: 500, finishedAt: record.startedAt + 20_000 },
      record.startedAt + 99_000
    )
    expect(job).toMatchObject({
      state: "cancelled",
      phase: "done",
      eta_seconds: 0,
      elapsed_seconds: 20,
      rate_per_second: 25,
      finished_at: "2024-05-01T10:00:20.000Z"
    })
  })
})
