import { effectLogLevel, LOG_LEVELS, type LogLevelName, logLevelSetting, readSettings } from "@autoembed/core"
import { Config, Effect, Layer, Logger } from "effect"

export type Level = LogLevelName

export type LogFormat = "json" | "logfmt" | "pretty"

/**
 * AUTOEMBED_LOG_FORMAT: `json` (default: one object per line, so log shippers need no parsing rules),
 * `logfmt`, or `pretty` (for a terminal).
 */
export const logFormatSetting = Config.literal("json", "logfmt", "pretty")("AUTOEMBED_LOG_FORMAT").pipe(
  Config.withDefault("json" as const)
)

/** Effect's own loggers; json and logfmt write errors and warnings to stderr, the rest to stdout. */
const loggers = {
  json: Logger.withLeveledConsole(Logger.jsonLogger),
  logfmt: Logger.withLeveledConsole(Logger.logfmtLogger),
  pretty: Logger.prettyLoggerDefault
} as const

/**
 * Every log of the process (the API's request log and warnings, core's workers, sweeper and probe)
 * through Effect's logger in AUTOEMBED_LOG_FORMAT, at `level` and above. A bad format fails start-up
 * with a message naming the setting.
 */
export const effectLoggerLayer = (level: Level) =>
  Layer.unwrapEffect(
    Effect.map(
      readSettings(logFormatSetting),
      (format) =>
        Layer.merge(
          Logger.replace(Logger.defaultLogger, loggers[format]),
          Logger.minimumLogLevel(effectLogLevel(level))
        )
    )
  )

/**
 * The configured level, or `override` (a caller's explicit setting wins); an invalid value is left to
 * the config layer to report.
 */
export const resolveLogLevel = (override: string | undefined): Effect.Effect<Level> =>
  override !== undefined && override in LOG_LEVELS
    ? Effect.succeed(override as Level)
    : Effect.orElseSucceed(logLevelSetting, () => "info" as const)
