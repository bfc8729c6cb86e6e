import { Backfill, Status } from "@autoembed/core"
import { Effect } from "effect"
import { ApiError } from "../Errors.js"
import type { Run } from "../Http.js"
import type { Handlers } from "../Serve.js"

const JOB_ID = /^[A-Za-z0-9_-]{1,64}$/

type EmbeddingHandlers = Pick<Handlers, "backfill" | "getBackfill" | "status" | "retryFailed">

/** Backfill, its progress, status and retry-failed. */
export const embeddingHandlers = (run: Run): EmbeddingHandlers => {
  // Two overlapping runs would not double work (claims), but would make both progress bars lie: one at a time
  // per server.
  let lastJob: string | undefined

  return {
    backfill: async ({ body }) => {
      if (body.dryRun) return { status: 200, body: await run(Effect.flatMap(Backfill, (b) => b.dryRun(body))) }
      if (lastJob !== undefined) {
        const previous = await run(Effect.flatMap(Backfill, (b) => b.get(lastJob!)))
        if (previous.state === "running") {
          throw new ApiError({
            status: 409,
            code: "backfill_running",
            message: `Backfill ${previous.id} is still running; wait for it or poll its progress`,
            details: { job_id: previous.id, location: `/v1/embeddings/backfill/${previous.id}` }
          })
        }
      }
      const job = await run(Effect.flatMap(Backfill, (b) => b.start(body)))
      lastJob = job.id
      return { status: 202, body: { job }, headers: { location: `/v1/embeddings/backfill/${job.id}` } }
    },
    getBackfill: async ({ params }) => {
      if (!JOB_ID.test(params.id)) {
        throw new ApiError({
          status: 404,
          code: "not_found",
          message: "No backfill job with that id",
          details: { id: params.id.slice(0, 64) }
        })
      }
      return { status: 200, body: await run(Effect.flatMap(Backfill, (b) => b.get(params.id))) }
    },
    status: async () => ({ status: 200, body: await run(Effect.flatMap(Status, (s) => s.report())) }),
    retryFailed: async ({ body }) => ({
      status: 200,
      body: await run(Effect.flatMap(Backfill, (b) => b.retryFailed(body.entity_types)))
    })
  }
}
