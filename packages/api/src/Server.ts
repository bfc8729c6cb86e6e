import {
  AutoEmbedConfig,
  type AutoEmbedConfigShape,
  drainTimeoutSetting,
  EXIT_CODES,
  exitCodeOf,
  loadSampleDataIfEmpty
} from "@autoembed/core"
import { serve, type ServerType } from "@hono/node-server"
import { Effect, Either, Option } from "effect"
import { readFileSync } from "node:fs"
import type { ServerOptions as HttpServerOptions } from "node:http"
import type { AddressInfo } from "node:net"
import { makeApp } from "./App.js"
import { HARD_EXIT_GRACE_MS, processStop, type StopReason } from "./Lifecycle.js"
import { type Level, makeLog } from "./Log.js"
import { type ApiRuntime, makeRuntime, StartupFailure } from "./Runtime.js"

export interface ServerOptions {
  /** Run the embedding workers in this process. */
  readonly workers: boolean
  /**
   * Serve the HTTP API (default true). With `api: false` (the `worker` command) the process runs
   * only the workers and answers /healthz, /readyz and /metrics on HOST:PORT, so an orchestrator
   * can probe it and Prometheus can scrape the worker's own counters.
   */
  readonly api?: boolean
  /** Load the bundled sample data when the database has no atoms and no messages (AUTOEMBED_SAMPLE_DATA=false still wins). Default false. */
  readonly sampleData?: boolean
  /** Settings on top of the environment (tests: port 0, a temporary database). */
  readonly config?: Partial<AutoEmbedConfigShape>
}

export interface RunningServer {
  readonly url: string
  readonly host: string
  readonly port: number
  readonly runtime: ApiRuntime
  /**
   * Stops accepting, lets in-flight requests finish (AUTOEMBED_DRAIN_TIMEOUT_MS at most), then
   * disposes the runtime (drains workers, closes the database).
   */
  readonly close: () => Promise<void>
}

const version = (): string => {
  try {
    return JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).version ?? "0.0.0"
  } catch {
    return "0.0.0"
  }
}

const isLoopback = (host: string) => host === "localhost" || host === "::1" || /^127\./.test(host)

const listen = (server: ServerType, host: string, port: number) =>
  new Promise<AddressInfo>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) =>
      reject(
        new StartupFailure({
          message: `Cannot listen on ${host}:${port} (${e.code ?? e.message}); set PORT or HOST to a free address`,
          exitCode: EXIT_CODES.configuration
        })
      )
    server.once("error", onError)
    server.once("listening", () => {
      server.off("error", onError)
      resolve(server.address() as AddressInfo)
    })
  })

/** How often Node looks for requests over their headers or request timeout (its default, 30 s, would let a trickled body outlive a 1 s bound by 29 s). */
const TIMEOUT_CHECK_MS = 500

/**
 * Bounds on slow clients: the headers within AUTOEMBED_HTTP_HEADERS_TIMEOUT_MS and the whole request,
 * body included, within AUTOEMBED_HTTP_REQUEST_TIMEOUT_MS (Node answers 408 and closes), an idle
 * keep-alive connection within AUTOEMBED_HTTP_IDLE_TIMEOUT_MS.
 */
const httpServerOptions = (config: AutoEmbedConfigShape): HttpServerOptions => ({
  headersTimeout: config.httpHeadersTimeoutMs,
  requestTimeout: config.httpRequestTimeoutMs,
  keepAliveTimeout: config.httpIdleTimeoutMs,
  connectionsCheckingInterval: TIMEOUT_CHECK_MS
})

/**
 * A connection on which no byte moves for this long is destroyed: the backstop for what the request
 * timeout does not cover (a client that does not read its response, a handler that never answers).
 * No answer legitimately takes longer than receiving the request plus one provider call.
 */
const socketIdleBound = (config: AutoEmbedConfigShape) => config.httpRequestTimeoutMs + config.providerTimeoutMs

/** Stops accepting and waits for in-flight requests, at most `drainMs`; then cuts the connections still open. */
const closeHttp = (server: ServerType, drainMs: number) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      if ("closeAllConnections" in server) server.closeAllConnections()
      resolve()
    }, drainMs)
    server.close(() => {
      clearTimeout(timer)
      resolve()
    })
    // Idle keep-alive sockets would hold close() open; busy ones finish their request first.
    if ("closeIdleConnections" in server) server.closeIdleConnections()
  })

/** Builds the runtime, loads sample data if asked, and listens. Throws `StartupFailure` (one line, exit code) when it cannot. */
export const startServer = async (options: ServerOptions): Promise<RunningServer> => {
  const api = options.api !== false
  const { runtime, logLevel } = await makeRuntime({ workers: options.workers, config: options.config })
  const log = makeLog(logLevel)
  try {
    const config = await runtime.runPromise(AutoEmbedConfig)
    if (api && options.sampleData && config.sampleData) {
      const loaded = await runtime.runPromise(loadSampleDataIfEmpty())
      if (loaded.loaded) {
        log.write(
          "info",
          `loaded the sample data set (${loaded.messages} messages, ${loaded.atoms} atoms, ${loaded.topics} topics); AUTOEMBED_SAMPLE_DATA=false starts empty`
        )
      }
    }
    const app = makeApp({
      runtime,
      auth: { apiToken: config.apiToken, protectReads: config.protectReads },
      log,
      version: version(),
      mode: api ? "api" : "worker"
    })
    const server = serve({
      fetch: app.fetch,
      hostname: config.host,
      port: config.port,
      serverOptions: httpServerOptions(config)
    })
    server.setTimeout(socketIdleBound(config))
    const address = await listen(server, config.host, config.port)
    if (api && !isLoopback(config.host) && Option.isNone(config.apiToken)) {
      log.write(
        "warning",
        `listening on ${config.host} without AUTOEMBED_API_TOKEN: anyone who can reach this address can write and start backfills`
      )
    }
    const shownHost = address.family === "IPv6" ? `[${address.address}]` : address.address
    const url = `http://${shownHost === "0.0.0.0" || shownHost === "[::]" ? "localhost" : shownHost}:${address.port}`

    let closing: Promise<void> | undefined
    const close = () => (closing ??= (async () => {
      await closeHttp(server, config.drainTimeoutMs)
      await runtime.dispose()
    })())
    return { url, host: config.host, port: address.port, runtime, close }
  } catch (e) {
    await runtime.dispose().catch(() => undefined)
    throw e
  }
}

/**
 * The bound of a whole shutdown: in-flight requests (one drain), the workers' batches (another, when
 * this process runs workers), and a grace period for closing the database.
 */
const hardExitBound = (drainMs: number, options: ServerOptions) =>
  drainMs * (options.workers ? 2 : 1) + HARD_EXIT_GRACE_MS

/** AUTOEMBED_DRAIN_TIMEOUT_MS before the configuration is loaded; a bad value is reported by start-up itself. */
const drainBeforeStart = (options: ServerOptions): number =>
  options.config?.drainTimeoutMs ?? Either.getOrElse(Effect.runSync(Effect.either(drainTimeoutSetting)), () => 15_000)

const stderrNote = (message: string) => process.stderr.write(`autoembed: ${message}\n`)

/**
 * Runs until SIGTERM, SIGINT or the exit of its parent process, then shuts down gracefully (once:
 * further signals are logged and ignored; a shutdown that overruns its bound exits with code 1).
 * Used by `pnpm start` (`{ workers: true, sampleData: true }`) and `pnpm cli serve`
 * (`{ workers: false }`); `{ workers: true, api: false }` serves only health and metrics. A start-up
 * failure prints one line to stderr and exits with core's `exitCodeOf`: 2 for what the user fixes in
 * settings or the environment (configuration, the database's address or rights, the provider), 1 otherwise.
 */
export const runServer = async (options: ServerOptions): Promise<void> => {
  const stop = processStop()
  // Before start-up: the workers may claim rows while the server starts, and a signal then must release them too.
  stop.install({ hardExitAfterMs: hardExitBound(drainBeforeStart(options), options), log: stderrNote })
  stop.watchParent()
  const requested = new Promise<StopReason>((resolve) => stop.onStop(resolve))
  let running: RunningServer
  try {
    running = await startServer(options)
  } catch (e) {
    const message = e instanceof StartupFailure ? e.message : String((e as Error)?.message ?? e).split("\n")[0]
    process.stderr.write(`autoembed: ${message}\n`)
    process.exit(exitCodeOf(e))
  }
  const { url } = running
  const config = await running.runtime.runPromise(AutoEmbedConfig)
  const log = makeLog(config.logLevel as Level)
  stop.install({ hardExitAfterMs: hardExitBound(config.drainTimeoutMs, options), log: (m) => log.write("warning", m) })
  if (options.api !== false) {
    log.write("info", `autoembed listening on ${url}`, {
      page: `${url}/`,
      docs: `${url}/docs`,
      try: `curl '${url}/v1/search?q=database+migration+failed&limit=5'`,
      workers: options.workers
    })
  } else {
    log.write("info", `autoembed worker running; health on ${url}/healthz, metrics on ${url}/metrics`)
  }
  const reason = await requested
  log.write("info", `${reason}: shutting down (finishing requests, draining workers)`)
  try {
    await running.close()
  } catch (e) {
    process.stderr.write(`autoembed: shutdown failed: ${String((e as Error)?.message ?? e).split("\n")[0]}\n`)
    process.exitCode = 1
  }
  log.write("info", "autoembed stopped")
}
