import {
  AutoEmbedConfig,
  type AutoEmbedConfigShape,
  drainTimeoutSetting,
  EXIT_CODES,
  loadSampleDataIfEmpty
} from "@autoembed/core"
import { NodeRuntime } from "@effect/platform-node"
import { serve, type ServerType } from "@hono/node-server"
import { Cause, Duration, Effect, Either, Exit, Layer, Option, Runtime } from "effect"
import { readFileSync } from "node:fs"
import type { ServerOptions as HttpServerOptions } from "node:http"
import type { AddressInfo } from "node:net"
import { makeApp } from "./App.js"
import { HARD_EXIT_GRACE_MS, processStop } from "./Lifecycle.js"
import { effectLoggerLayer, resolveLogLevel } from "./Log.js"
import { type ApiRuntime, makeRuntime, StartupFailure, startupFailure } from "./Runtime.js"
import { readServerConfig, type ServerConfigShape } from "./ServerConfig.js"

export interface ServerOptions {
  /** Run the embedding workers in this process. */
  readonly workers: boolean
  /**
   * Serve the HTTP API (default true). With `api: false` (the `worker` command) the process runs
   * only the workers and answers /healthz, /readyz and /metrics on HOST:PORT, so an orchestrator
   * can probe it and Prometheus can scrape the worker's own counters.
   */
  readonly api?: boolean
  /**
   * Load the bundled sample data when the database has no atoms and no messages (AUTOEMBED_SAMPLE_DATA=false
   * still wins). Default false.
   */
  readonly sampleData?: boolean
  /** Settings on top of the environment (tests: a temporary database). */
  readonly config?: Partial<AutoEmbedConfigShape>
  /** The server's settings on top of the environment (tests: port 0, a token). */
  readonly server?: Partial<ServerConfigShape>
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

/**
 * How often Node looks for requests over their headers or request timeout (its default, 30 s, would let a
 * trickled body outlive a 1 s bound by 29 s).
 */
const TIMEOUT_CHECK_MS = 500

/**
 * Bounds on slow clients: the headers within AUTOEMBED_HTTP_HEADERS_TIMEOUT_MS and the whole request,
 * body included, within AUTOEMBED_HTTP_REQUEST_TIMEOUT_MS (Node answers 408 and closes), an idle
 * keep-alive connection within AUTOEMBED_HTTP_IDLE_TIMEOUT_MS.
 */
const httpServerOptions = (settings: ServerConfigShape): HttpServerOptions => ({
  headersTimeout: settings.httpHeadersTimeoutMs,
  requestTimeout: settings.httpRequestTimeoutMs,
  keepAliveTimeout: settings.httpIdleTimeoutMs,
  connectionsCheckingInterval: TIMEOUT_CHECK_MS
})

/**
 * A connection on which no byte moves for this long is destroyed: the backstop for what the request
 * timeout does not cover (a client that does not read its response, a handler that never answers).
 * No answer legitimately takes longer than receiving the request plus one provider call.
 */
const socketIdleBound = (settings: ServerConfigShape, config: AutoEmbedConfigShape) =>
  settings.httpRequestTimeoutMs + config.providerTimeoutMs

/** Stops accepting and waits for in-flight requests, at most `drainMs`; then cuts the connections still open. */
const closeHttp = (server: ServerType, drainMs: number) =>
  Effect.async<void>((resume) => {
    server.close(() => resume(Effect.void))
    // Idle keep-alive sockets would hold close() open; busy ones finish their request first.
    if ("closeIdleConnections" in server) server.closeIdleConnections()
  }).pipe(
    Effect.timeout(Duration.millis(drainMs)),
    Effect.catchTag("TimeoutException", () =>
      Effect.sync(() => {
        if ("closeAllConnections" in server) server.closeAllConnections()
      }))
  )

/**
 * Builds the runtime, loads sample data if asked, and listens. Throws `StartupFailure` (one line, exit code)
 * when it cannot.
 */
export const startServer = async (options: ServerOptions): Promise<RunningServer> => {
  const api = options.api !== false
  // The server's own settings first: a bad PORT is reported before migrations and the provider probe.
  const settingsExit = await Effect.runPromiseExit(readServerConfig(options.server))
  if (Exit.isFailure(settingsExit)) throw startupFailure(settingsExit.cause)
  const settings = settingsExit.value
  const { runtime } = await makeRuntime({ workers: options.workers, config: options.config })
  try {
    const config = await runtime.runPromise(AutoEmbedConfig)
    if (api && options.sampleData && config.sampleData) {
      const loaded = await runtime.runPromise(loadSampleDataIfEmpty())
      if (loaded.loaded) {
        await runtime.runPromise(Effect.logInfo(
          `loaded the sample data set (${loaded.messages} messages, ${loaded.atoms} atoms, ${loaded.topics} topics); ` +
            "AUTOEMBED_SAMPLE_DATA=false starts empty"
        ))
      }
    }
    const app = makeApp({
      runtime,
      auth: { apiToken: settings.apiToken, protectReads: settings.protectReads },
      version: version(),
      mode: api ? "api" : "worker"
    })
    const server = serve({
      fetch: app.fetch,
      hostname: settings.host,
      port: settings.port,
      serverOptions: httpServerOptions(settings)
    })
    server.setTimeout(socketIdleBound(settings, config))
    const address = await listen(server, settings.host, settings.port)
    if (api && !isLoopback(settings.host) && Option.isNone(settings.apiToken)) {
      await runtime.runPromise(Effect.logWarning(
        `listening on ${settings.host} without AUTOEMBED_API_TOKEN: ` +
          "anyone who can reach this address can write and start backfills"
      ))
    }
    const shownHost = address.family === "IPv6" ? `[${address.address}]` : address.address
    const url = `http://${shownHost === "0.0.0.0" || shownHost === "[::]" ? "localhost" : shownHost}:${address.port}`

    let closing: Promise<void> | undefined
    const close = () => (closing ??= (async () => {
      await Effect.runPromise(closeHttp(server, config.drainTimeoutMs))
      await runtime.dispose()
    })())
    return { url, host: settings.host, port: address.port, runtime, close }
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

const firstLine = (e: unknown) => String((e as Error)?.message ?? e).split("\n")[0]

/** The running server as a scoped resource: listening once acquired; released by a graceful shutdown. */
const running = (options: ServerOptions) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: () => startServer(options),
      catch: (e) => e instanceof StartupFailure ? e : startupFailure(Cause.fail(e))
    }),
    (server) =>
      Effect.gen(function*() {
        yield* Effect.logInfo(
          `${processStop().reason() ?? "interrupted"}: shutting down (finishing requests, draining workers)`
        )
        yield* Effect.tryPromise(() => server.close()).pipe(
          Effect.tapError((e) => Effect.sync(() => stderrNote(`shutdown failed: ${firstLine(e.error)}`))),
          // A failed shutdown is a defect of the run: the process exits with code 1.
          Effect.orDie
        )
        yield* Effect.logInfo("autoembed stopped")
      })
  )

/**
 * Runs until SIGTERM, SIGINT or the exit of its parent process (the stop controller's Deferred),
 * then shuts down gracefully (once: further signals are logged and ignored; a shutdown that overruns
 * its bound exits with code 1). Fails with `StartupFailure` (after printing its one line) when the
 * server cannot start; dies when the shutdown fails.
 */
export const serverProgram = (options: ServerOptions): Effect.Effect<void, StartupFailure> =>
  Effect.gen(function*() {
    const stop = processStop()
    // Before start-up: the workers may claim rows while the server starts, and a signal then must release them too.
    stop.install({ hardExitAfterMs: hardExitBound(drainBeforeStart(options), options), log: stderrNote })
    stop.watchParent()
    yield* Effect.scoped(Effect.gen(function*() {
      const { runtime, url } = yield* running(options)
      const config = yield* Effect.promise(() => runtime.runPromise(AutoEmbedConfig))
      // Signal handlers run outside any fiber: they log through this fiber's logger.
      const logWarning = Runtime.runSync(yield* Effect.runtime<never>())
      stop.install({
        hardExitAfterMs: hardExitBound(config.drainTimeoutMs, options),
        log: (m) => logWarning(Effect.logWarning(m))
      })
      if (options.api !== false) {
        yield* Effect.logInfo(`autoembed listening on ${url}`).pipe(Effect.annotateLogs({
          page: `${url}/`,
          docs: `${url}/docs`,
          try: `curl '${url}/v1/search?q=database+migration+failed&limit=5'`,
          workers: options.workers
        }))
      } else {
        yield* Effect.logInfo(`autoembed worker running; health on ${url}/healthz, metrics on ${url}/metrics`)
      }
      yield* stop.requested
    }))
  }).pipe(
    Effect.provide(Layer.unwrapEffect(
      Effect.map(resolveLogLevel(options.config?.logLevel), (level) =>
        Layer.catchAllCause(effectLoggerLayer(level), (cause) => Layer.fail(startupFailure(cause))))
    )),
    // One line on stderr, whatever stopped the start-up (the logger's settings, the database, the provider).
    Effect.tapError((failure) =>
      Effect.sync(() => stderrNote(failure.message))
    )
  )

/** The exit code of a finished server program: a start-up failure's own, 0 for a clean or signalled stop, else 1. */
const exitCode = (exit: Exit.Exit<void, StartupFailure>): number => {
  if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) return 0
  const failure = Cause.failureOption(exit.cause)
  return Option.isSome(failure) ? failure.value.exitCode : 1
}

/**
 * The server as a process's main program (`pnpm start`, packages/api/src/main.ts): NodeRuntime.runMain
 * interrupts it on SIGTERM/SIGINT (its release is the graceful shutdown) and exits with `exitCode`.
 */
export const runServerMain = (options: ServerOptions): void =>
  NodeRuntime.runMain(serverProgram(options), {
    disableErrorReporting: true,
    disablePrettyLogger: true,
    teardown: (exit, onExit) => onExit(exitCode(exit as Exit.Exit<void, StartupFailure>))
  })
