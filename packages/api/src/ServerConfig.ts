import { ConfigurationError, nonNegativeInt, optionalSecret, positiveInt, readSettings } from "@autoembed/core"
import { Config, Effect, Option, Redacted } from "effect"

/** The HTTP server's own settings: where it listens, who may call it, how long slow clients get. */
export interface ServerConfigShape {
  readonly host: string
  readonly port: number
  /** When set, writes (and with `protectReads` reads) need `Authorization: Bearer <token>`. */
  readonly apiToken: Option.Option<Redacted.Redacted<string>>
  readonly protectReads: boolean
  /** How long a client may take to send the request headers. */
  readonly httpHeadersTimeoutMs: number
  /** How long a client may take to send the whole request, body included. */
  readonly httpRequestTimeoutMs: number
  /** How long an idle keep-alive connection stays open. */
  readonly httpIdleTimeoutMs: number
}

/** The characters of a bearer token (RFC 6750's token68); hono's bearer-auth refuses any other header. */
const TOKEN68 = /^[A-Za-z0-9._~+/-]+=*$/

export const serverConfig: Config.Config<ServerConfigShape> = Config.all({
  host: Config.string("HOST").pipe(Config.withDefault("127.0.0.1")),
  port: nonNegativeInt("PORT", 3000).pipe(
    Config.validate({ message: "PORT must be a port number from 0 to 65535", validation: (n) => n <= 65535 })
  ),
  apiToken: optionalSecret("AUTOEMBED_API_TOKEN").pipe(
    Config.validate({
      message: "AUTOEMBED_API_TOKEN must consist of letters, digits and . _ ~ + / - (optionally ending in =)",
      validation: (o) => Option.match(o, { onNone: () => true, onSome: (t) => TOKEN68.test(Redacted.value(t)) })
    })
  ),
  protectReads: Config.boolean("AUTOEMBED_PROTECT_READS").pipe(Config.withDefault(false)),
  httpHeadersTimeoutMs: positiveInt("AUTOEMBED_HTTP_HEADERS_TIMEOUT_MS", 10_000, 600_000),
  httpRequestTimeoutMs: positiveInt("AUTOEMBED_HTTP_REQUEST_TIMEOUT_MS", 30_000, 3_600_000),
  httpIdleTimeoutMs: positiveInt("AUTOEMBED_HTTP_IDLE_TIMEOUT_MS", 5_000, 600_000)
}).pipe(
  Config.validate({
    // Node refuses a headers timeout above the request timeout; name the settings instead.
    message: "AUTOEMBED_HTTP_HEADERS_TIMEOUT_MS must not be larger than AUTOEMBED_HTTP_REQUEST_TIMEOUT_MS",
    validation: (c) => c.httpHeadersTimeoutMs <= c.httpRequestTimeoutMs
  })
)

/**
 * The server's settings from the environment (or the current ConfigProvider), with `overrides` on
 * top (tests: port 0); a mistake fails with one line naming each setting.
 */
export const readServerConfig = (
  overrides: Partial<ServerConfigShape> = {}
): Effect.Effect<ServerConfigShape, ConfigurationError> =>
  Effect.map(readSettings(serverConfig), (settings) => ({ ...settings, ...overrides }))
