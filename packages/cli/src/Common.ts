import { AutoEmbed, type BackfillJob, EXIT_CODES } from "@autoembed/core"
import { Options } from "@effect/cli"
import { Console, Effect, type Schema } from "effect"
import { CliExit } from "./CliExit.js"
import { toJson } from "./Json.js"
import { progressBar } from "./Output.js"

/**
 * What the command files (Cli.ts, SetsCommand.ts) share, so a command of either reads its options,
 * runs on the services and prints its result in one way.
 */

export const json = Options.boolean("json").pipe(Options.withDescription("Print JSON instead of tables"))

/** The services for a command: no background workers unless the command runs them itself. */
export const services = (options: { readonly workers?: boolean } = {}) =>
  AutoEmbed.layer({ workers: options.workers ?? false })

/**
 * A command's result on stdout: with `--json` the HTTP contract's encoding of it (what the matching
 * route answers, see Json.ts), otherwise the text people read.
 */
export const printResult = <A, I>(
  asJson: boolean,
  schema: Schema.Schema<A, I, never>,
  value: A,
  text: (value: A) => string,
  indent = 2
) => Console.log(asJson ? toJson(schema, value, indent) : text(value))

/**
 * A backfill's progress: a bar redrawn in place on a terminal; otherwise (logs, CI) a line every
 * `lines.everyMs` where the command wants them, nothing where it does not.
 */
export const progressPrinter = (
  out: NodeJS.WriteStream,
  options: {
    readonly bar: boolean
    readonly lines?: { readonly everyMs: number; readonly line: (job: BackfillJob) => string }
  }
) => {
  let last = 0
  return {
    onProgress: (job: BackfillJob) =>
      Effect.sync(() => {
        if (options.bar) out.write(`\r${progressBar(job)}\u001b[K`)
        else if (options.lines !== undefined && Date.now() - last >= options.lines.everyMs) {
          last = Date.now()
          out.write(`${options.lines.line(job)}\n`)
        }
      }),
    /** The bar at its end, and the line after it. */
    done: (job: BackfillJob) =>
      Effect.sync(() => {
        if (options.bar) out.write(`\r${progressBar(job)}\u001b[K\n`)
      })
  }
}

/** A backfill that did not run to its end (the provider, the configuration): exit code 2 with its error. */
export const unlessSucceeded = (job: BackfillJob) =>
  job.state === "succeeded"
    ? Effect.void
    : new CliExit({ exitCode: EXIT_CODES.configuration, message: job.error ?? `backfill ${job.state}` })

/** A backfill that left failed rows: exit code 1, and where to see them (`where`) before retrying. */
export const unlessRowsFailed = (job: BackfillJob, where: string) =>
  job.failed === 0
    ? Effect.void
    : new CliExit({
      exitCode: EXIT_CODES.failed,
      message: `${job.failed} rows failed; see \`${where}\`, then \`pnpm cli retry-failed\``
    })
