import { Search, SearchParams } from "@autoembed/core"
import { Effect } from "effect"
import type { Hono } from "hono"
import { type ApiEnv, readQuery } from "../Http.js"
import type { RouteDeps } from "./Context.js"

/** GET /v1/search?q=...&mode=hybrid&types=atoms,messages&limit=10 */
export const searchRoutes = (app: Hono<ApiEnv>, { run, auth }: RouteDeps) => {
  app.get("/v1/search", auth.read, async (c) => {
    const request = readQuery(c, SearchParams)
    const response = await run(Effect.flatMap(Search, (s) => s.search(request)))
    return c.json(response)
  })
}
