import { Database, EmbeddingProvider } from "@autoembed/core"
import * as SqlClient from "@effect/sql/SqlClient"
import { Duration, Effect } from "effect"
import type { Hono } from "hono"
import { ApiError } from "../Errors.js"
import type { ApiEnv } from "../Http.js"
import { renderMetrics } from "../Metrics.js"
import type { RouteDeps } from "./Context.js"

const CHECK_TIMEOUT = Duration.seconds(3)
/** A provider call per probe would cost money on paid APIs and load on Ollama: reuse a success for this long. */
const PROVIDER_OK_TTL_MS = 30_000
const PROVIDER_FAIL_TTL_MS = 5_000

interface Check {
  readonly ok: boolean
  readonly ms: number
  readonly error?: string
}

const timed = <E, R>(effect: Effect.Effect<unknown, E, R>, what: string) =>
  Effect.gen(function*() {
    const started = performance.now()
    const result = yield* effect.pipe(
      Effect.timeoutFail({ duration: CHECK_TIMEOUT, onTimeout: () => new Error(`${what} did not answer within 3 s`) }),
      Effect.either
    )
    const ms = Math.round(performance.now() - started)
    const check: Check = result._tag === "Right"
      ? { ok: true, ms }
      : { ok: false, ms, error: String((result.left as { message?: string })?.message ?? result.left).slice(0, 200) }
    return check
  })

/**
 * /healthz (the process) and /readyz (database and provider) stay open for probes, which carry no
 * token. /metrics (Prometheus) is a read route: its row and error counts need the token with
 * AUTOEMBED_PROTECT_READS=true (Prometheus sends one with `authorization: { credentials: ... }`).
 */
export const healthRoutes = (app: Hono<ApiEnv>, { run, http, auth }: RouteDeps) => {
  let providerCheck: { check: Check; at: number } | undefined

  app.get("/healthz", (c) => c.json({ status: "ok" as const }))

  app.get("/readyz", async (c) => {
    const report = await run(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const database = yield* Database
      const provider = yield* EmbeddingProvider
      const db = yield* timed(sql`SELECT 1`, "the database")
      const fresh = providerCheck &&
        Date.now() - providerCheck.at < (providerCheck.check.ok ? PROVIDER_OK_TTL_MS : PROVIDER_FAIL_TTL_MS)
      const prov = fresh
        ? providerCheck!.check
        : yield* timed(provider.embed(["autoembed readiness probe"], "query"), "the embedding provider")
      if (!fresh) providerCheck = { check: prov, at: Date.now() }
      return {
        database: { ...db, kind: database.kind },
        provider: { ...prov, provider: provider.provider, model: provider.model }
      }
    }))
    if (!report.database.ok || !report.provider.ok) {
      throw new ApiError(
        503,
        "not_ready",
        "Not ready: " +
          [report.database.ok ? "" : "database", report.provider.ok ? "" : "provider"].filter(Boolean).join(" and ") +
          " failing",
        report,
        { "retry-after": "5" }
      )
    }
    return c.json({ status: "ready" as const, ...report })
  })

  app.get("/metrics", auth.read, async (c) => {
    const text = await run(renderMetrics(http))
    return c.body(text, 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" })
  })
}
