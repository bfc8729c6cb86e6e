import { Backfill, BackfillRequest, Status } from "@autoembed/core"
import { Effect } from "effect"
import type { Hono } from "hono"
import { ApiError } from "../Errors.js"
import { type ApiEnv, readJson } from "../Http.js"
import { RetryFailedRequest } from "../Schemas.js"
import type { RouteDeps } from "./Context.js"

const JOB_ID = /^[A-Za-z0-9_-]{1,64}$/

/** Backfill, its progress, status and retry-failed. */
export const embeddingRoutes = (app: Hono<ApiEnv>, { run, auth }: RouteDeps) => {
  // Two overlapping runs would not double work (claims), but would make both progress bars lie: one at a time per server.
  let lastJob: string | undefined

  app.post("/v1/embeddings/backfill", auth.write, async (c) => {
    const request = await readJson(c, BackfillRequest, { emptyAs: {} })
    if (request.dry_run) return c.json(await run(Effect.flatMap(Backfill, (b) => b.dryRun(request))))
    if (lastJob !== undefined) {
      const previous = await run(Effect.flatMap(Backfill, (b) => b.get(lastJob!)))
      if (previous.state === "running") {
        throw new ApiError(
          409,
          "backfill_running",
          `Backfill ${previous.id} is still running; wait for it or poll its progress`,
          {
            job_id: previous.id,
            location: `/v1/embeddings/backfill/${previous.id}`
          }
        )
      }
    }
    const job = await run(Effect.flatMap(Backfill, (b) => b.start(request)))
    lastJob = job.id
    return c.json({ job }, 202, { location: `/v1/embeddings/backfill/${job.id}` })
  })

  app.get("/v1/embeddings/backfill/:id", auth.read, async (c) => {
    const id = c.req.param("id")
    if (!JOB_ID.test(id)) throw new ApiError(404, "not_found", "No backfill job with that id", { id: id.slice(0, 64) })
    return c.json(await run(Effect.flatMap(Backfill, (b) => b.get(id))))
  })

  app.get("/v1/embeddings/status", auth.read, async (c) => c.json(await run(Effect.flatMap(Status, (s) => s.report()))))

  app.post("/v1/embeddings/retry-failed", auth.write, async (c) => {
    const request = await readJson(c, RetryFailedRequest, { emptyAs: {} })
    return c.json(await run(Effect.flatMap(Backfill, (b) => b.retryFailed(request.entity_types))))
  })
}
