import { Readiness } from "@autoembed/core"
import { Effect } from "effect"
import { ApiError } from "../Errors.js"
import type { Run } from "../Http.js"
import { type HttpMetrics, renderMetrics } from "../Metrics.js"
import type { Handlers } from "../Serve.js"

/**
 * /healthz (the process) and /readyz (database and provider, checked by core's Readiness) stay open
 * for probes, which carry no token. /metrics (Prometheus) is a read route: its row and error counts
 * need the token with AUTOEMBED_PROTECT_READS=true (Prometheus sends one with `authorization: { credentials: ... }`).
 */
export const healthHandlers = (run: Run, http: HttpMetrics): Pick<Handlers, "health" | "ready" | "metrics"> => ({
  health: async () => ({ status: 200, body: { status: "ok" } }),
  ready: async () => {
    const report = await run(Effect.flatMap(Readiness, (r) => r.check()))
    if (!report.database.ok || !report.provider.ok) {
      const failing = [report.database.ok ? "" : "database", report.provider.ok ? "" : "provider"].filter(Boolean)
      throw new ApiError({
        status: 503,
        code: "not_ready",
        message: `Not ready: ${failing.join(" and ")} failing`,
        details: report,
        headers: { "retry-after": "5" }
      })
    }
    return { status: 200, body: { status: "ready", ...report } }
  },
  metrics: async () => ({ status: 200, body: await run(renderMetrics(http)) })
})
