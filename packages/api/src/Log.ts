import { Config, Effect, Layer, Logger, LogLevel } from "effect"

export type Level = "debug" | "info" | "warning" | "error" | "none"

const rank: Record<Level, number> = { debug: 0, info: 1, warning: 2, error: 3, none: 4 }

/** One JSON object per line, so log shippers need no parsing rules; errors and warnings go to stderr. */
export interface JsonLog {
  readonly level: Level
  readonly write: (level: Exclude<Level, "none">, msg: string, fields?: Record<string, unknown>) => void
}

export const makeLog = (level: Level): JsonLog => ({
  level,
  write: (at, msg, fields = {}) => {
    if (rank[at] < rank[level]) return
    const line = JSON.stringify({ time: new Date().toISOString(), level: at, msg, ...fields }) + "\n"
    if (at === "error" || at === "warning") process.stderr.write(line)
    else process.stdout.write(line)
  }
})

const effectLevel: Record<Level, LogLevel.LogLevel> = {
  debug: LogLevel.Debug,
  info: LogLevel.Info,
  warning: LogLevel.Warning,
  error: LogLevel.Error,
  none: LogLevel.None
}

/** Core's own Effect logs (workers, sweeper, probe) in the same JSON-lines format and level. */
export const effectLoggerLayer = (level: Level) =>
  Layer.merge(
    Logger.replace(
      Logger.defaultLogger,
      Logger.make(({ logLevel, message, cause, annotations }) => {
        const at = logLevel._tag === "Fatal" || logLevel._tag === "Error"
          ? "error"
          : logLevel._tag === "Warning"
          ? "warning"
          : logLevel._tag === "Debug" || logLevel._tag === "Trace"
          ? "debug"
          : "info"
        const parts = Array.isArray(message) ? message : [message]
        const fields: Record<string, unknown> = {}
        for (const [k, v] of annotations) fields[k] = v
        if (cause._tag !== "Empty") fields.cause = String(cause).slice(0, 2000)
        makeLog(level).write(at, parts.map((p) => (typeof p === "string" ? p : JSON.stringify(p))).join(" "), fields)
      })
    ),
    Logger.minimumLogLevel(effectLevel[level])
  )

/** AUTOEMBED_LOG_LEVEL, read before the rest of the configuration so start-up logs obey it too. */
export const logLevelConfig = Config.literal("debug", "info", "warning", "error", "none")("AUTOEMBED_LOG_LEVEL").pipe(
  Config.withDefault("info" as const)
)

/** The configured level, or `override` (a caller's explicit setting wins); an invalid value is left to the config layer to report. */
export const resolveLogLevel = (override: string | undefined): Effect.Effect<Level> =>
  override !== undefined && override in rank
    ? Effect.succeed(override as Level)
    : Effect.orElseSucceed(logLevelConfig, () => "info" as const)
