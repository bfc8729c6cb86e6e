import { Extraction } from "@autoembed/core"
import { Effect } from "effect"
import type { Run } from "../Http.js"
import type { Handlers } from "../Serve.js"

/** POST /v1/messages and POST /v1/extractions: writes whose rows the pipeline embeds on its own. */
export const ingestHandlers = (run: Run): Pick<Handlers, "ingestMessages" | "persistExtraction"> => ({
  ingestMessages: async ({ body }) => ({
    status: 201,
    body: await run(Effect.flatMap(Extraction, (x) => x.ingestMessages(body)))
  }),
  persistExtraction: async ({ body }) => ({
    status: 201,
    body: await run(Effect.flatMap(Extraction, (x) => x.persist(body)))
  })
})
