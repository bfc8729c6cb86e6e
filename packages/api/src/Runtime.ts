import {
  AutoEmbed,
  type AutoEmbedConfigShape,
  type AutoEmbedServices,
  type AutoEmbedStartupError,
  type EmbeddingQueue,
  ExitCode,
  exitCodeOf,
  type Failure,
  FailureTypeId,
  startupErrorMessage
} from "@autoembed/core"
import { Cause, Effect, Exit, Layer, ManagedRuntime, Schema } from "effect"
import { effectLoggerLayer, type Level, resolveLogLevel } from "./Log.js"

/** What route handlers may use: everything autoembed builds (the queue only when this process runs workers). */
export type ApiServices = AutoEmbedServices | EmbeddingQueue

export type ApiRuntime = ManagedRuntime.ManagedRuntime<ApiServices, AutoEmbedStartupError>

export interface RuntimeOptions {
  /** Run embedding workers in this process. */
  readonly workers: boolean
  /** Settings on top of the environment (tests pass port 0, an in-memory database, ...). */
  readonly config?: Partial<AutoEmbedConfigShape>
}

/** Why start-up failed, as one line, with the exit code from core's one table (2: configuration, provider). */
export class StartupFailure extends Schema.TaggedError<StartupFailure>()("StartupFailure", {
  message: Schema.String,
  exitCode: ExitCode
}) implements Failure {
  get [FailureTypeId](): FailureTypeId {
    return FailureTypeId
  }
}

export const startupFailure = (cause: Cause.Cause<unknown>): StartupFailure => {
  const error = Cause.squash(cause)
  return new StartupFailure({ message: startupErrorMessage(error), exitCode: exitCodeOf(error) })
}

/**
 * The one ManagedRuntime the HTTP layer calls core through. Building it runs migrations and the
 * provider probe; disposing it drains the workers and closes the database.
 */
export const makeRuntime = async (options: RuntimeOptions): Promise<{ runtime: ApiRuntime; logLevel: Level }> => {
  const logLevel = await Effect.runPromise(resolveLogLevel(options.config?.logLevel))
  const core = AutoEmbed.layer({ workers: options.workers, config: options.config })
  const layer = core.pipe(Layer.provide(effectLoggerLayer(logLevel)))
  const runtime: ApiRuntime = ManagedRuntime.make(layer as Layer.Layer<ApiServices, AutoEmbedStartupError>)
  const built = await runtime.runPromiseExit(Effect.void)
  if (Exit.isFailure(built)) {
    await runtime.dispose().catch(() => undefined)
    throw startupFailure(built.cause)
  }
  return { runtime, logLevel }
}
