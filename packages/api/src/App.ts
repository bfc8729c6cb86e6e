import { Effect } from "effect"
import { Hono } from "hono"
import { bodyLimit } from "hono/body-limit"
import { HTTPException } from "hono/http-exception"
import { methodNotAllowed } from "hono/method-not-allowed"
import { matchedRoutes } from "hono/route"
import { randomUUID } from "node:crypto"
import { authFor, type AuthSettings } from "./Auth.js"
import { Api, WORKER_OPERATIONS } from "./contract/Api.js"
import { ApiError, errorBody, mapError, type Mapped } from "./Errors.js"
import { type ApiEnv, HandlerFailure, MAX_BODY_BYTES, runWith } from "./Http.js"
import { HttpMetrics } from "./Metrics.js"
import { embeddingHandlers } from "./routes/embeddings.js"
import { healthHandlers } from "./routes/health.js"
import { ingestHandlers } from "./routes/ingest.js"
import { pageHandlers } from "./routes/pages.js"
import { searchHandlers } from "./routes/search.js"
import { setHandlers } from "./routes/sets.js"
import type { ApiRuntime } from "./Runtime.js"
import { type Handlers, serve } from "./Serve.js"

export interface AppOptions {
  readonly runtime: ApiRuntime
  readonly auth: AuthSettings
  readonly version: string
  /** "api": every route; "worker": only /healthz, /readyz and /metrics (a worker process's health port). */
  readonly mode: "api" | "worker"
}

/** Accepted as given when it looks like an id (a proxy's or the caller's), so logs correlate across hops. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

export const makeApp = (options: AppOptions) => {
  const app = new Hono<ApiEnv>()
  const http = new HttpMetrics()
  const run = runWith(options.runtime)
  // Through the runtime's logger (AUTOEMBED_LOG_FORMAT, AUTOEMBED_LOG_LEVEL), like core's own logs.
  const log = (effect: Effect.Effect<void>) => options.runtime.runFork(effect)

  app.use(async (c, next) => {
    const started = performance.now()
    const given = c.req.header("x-request-id")
    const requestId = given !== undefined && REQUEST_ID.test(given) ? given : randomUUID()
    c.set("requestId", requestId)
    await next()
    c.res.headers.set("x-request-id", requestId)
    c.res.headers.set("x-content-type-options", "nosniff")
    c.res.headers.set("referrer-policy", "no-referrer")
    const ms = performance.now() - started
    // The matched pattern, never the raw path: bounded metric labels, and no ids in them.
    const route = matchedRoutes(c).filter((r) => r.method !== "ALL").at(-1)?.path ?? "unmatched"
    http.record(c.req.method, route, c.res.status, ms / 1000)
    log(
      Effect.logInfo("request").pipe(Effect.annotateLogs({
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        ms: Math.round(ms * 10) / 10,
        request_id: requestId
      }))
    )
  })
  app.use(methodNotAllowed({
    app,
    onMethodNotAllowed: (c, methods) =>
      respond(c, {
        error: new ApiError({
          status: 405,
          code: "method_not_allowed",
          message: `${c.req.method} is not allowed here; use ${methods.join(", ")}`,
          details: { allow: methods },
          headers: { allow: methods.join(", ") }
        })
      })
  }))
  app.use(
    "*",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: () => {
        // The rest of the body stays unread on the socket: close it rather than parse leftovers as the next request.
        throw new ApiError({
          status: 413,
          code: "payload_too_large",
          message: `The body is larger than ${MAX_BODY_BYTES} bytes`,
          details: { max_bytes: MAX_BODY_BYTES },
          headers: { connection: "close" }
        })
      }
    })
  )

  // Every operation of the contract, each with its handler; a worker's health port serves only its own.
  const handlers: Handlers = {
    ...healthHandlers(run, http),
    ...ingestHandlers(run),
    ...searchHandlers(run),
    ...embeddingHandlers(run),
    ...setHandlers(run),
    ...pageHandlers(options.version)
  }
  const guards = authFor(options.auth)
  for (const id of Object.keys(Api) as Array<keyof Api>) {
    if (options.mode === "api" || WORKER_OPERATIONS.includes(id)) serve(app, Api[id], handlers[id] as never, guards)
  }

  const respond = (c: Parameters<Parameters<typeof app.onError>[0]>[1], mapped: Mapped) => {
    const requestId = c.get("requestId") ?? randomUUID()
    if (mapped.log) {
      const logAt = mapped.log.level === "error" ? Effect.logError : Effect.logWarning
      log(
        logAt("request failed").pipe(Effect.annotateLogs({
          request_id: requestId,
          method: c.req.method,
          path: c.req.path,
          status: mapped.error.status,
          detail: mapped.log.detail
        }))
      )
    }
    return c.json(errorBody(mapped.error, requestId), mapped.error.status, mapped.error.headers)
  }

  app.notFound((c) =>
    respond(c, {
      error: new ApiError({
        status: 404,
        code: "not_found",
        message: `No route ${c.req.method} ${c.req.path.slice(0, 200)}; see /docs`
      })
    })
  )
  // A middleware's finished answer (bearer-auth's 401, already in the error shape) goes out as it is.
  app.onError((err, c) =>
    err instanceof HTTPException
      ? err.getResponse()
      : respond(c, err instanceof HandlerFailure ? err.mapped : mapError(err))
  )
  return app
}
