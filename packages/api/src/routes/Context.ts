import type { MiddlewareHandler } from "hono"
import type { Run } from "../Http.js"
import type { JsonLog } from "../Log.js"
import type { HttpMetrics } from "../Metrics.js"

/** What route modules get from `App`: the runtime runner and the auth checks. */
export interface RouteDeps {
  readonly run: Run
  readonly auth: { readonly write: MiddlewareHandler; readonly read: MiddlewareHandler }
  readonly log: JsonLog
  readonly http: HttpMetrics
}
