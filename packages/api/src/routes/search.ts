import { Search } from "@autoembed/core"
import { Effect } from "effect"
import type { Run } from "../Http.js"
import type { Handlers } from "../Serve.js"

/** GET /v1/search?q=...&mode=hybrid&types=atoms,messages&limit=10 */
export const searchHandlers = (run: Run): Pick<Handlers, "search"> => ({
  search: async ({ query }) => ({ status: 200, body: await run(Effect.flatMap(Search, (s) => s.search(query))) })
})
