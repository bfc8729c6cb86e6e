import { Extraction, ExtractionRequest, IngestMessagesRequest } from "@autoembed/core"
import { Effect, Schema } from "effect"
import type { Hono } from "hono"
import { type ApiEnv, readJson } from "../Http.js"
import type { RouteDeps } from "./Context.js"

/**
 * Core's message schema turns any string into a Date, "last tuesday" included (an Invalid Date that
 * would only fail in SQL); the API refuses those up front with a 422 that names the field.
 */
const IngestRequest = IngestMessagesRequest.pipe(
  Schema.filter((r) =>
    r.messages.every((m) => m.sent_at == null || !Number.isNaN(m.sent_at.getTime())) ||
    "sent_at must be a date such as 2025-03-01 or 2025-03-01T10:00:00Z"
  )
)

/** POST /v1/messages and POST /v1/extractions: writes whose rows the pipeline embeds on its own. */
export const ingestRoutes = (app: Hono<ApiEnv>, { run, auth }: RouteDeps) => {
  app.post("/v1/messages", auth.write, async (c) => {
    const request = await readJson(c, IngestRequest)
    const result = await run(Effect.flatMap(Extraction, (x) => x.ingestMessages(request)))
    return c.json(result, 201)
  })

  app.post("/v1/extractions", auth.write, async (c) => {
    const request = await readJson(c, ExtractionRequest)
    const result = await run(Effect.flatMap(Extraction, (x) => x.persist(request)))
    return c.json(result, 201)
  })
}
