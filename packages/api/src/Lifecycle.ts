/**
 * How a long-running autoembed process learns that it must stop: the first SIGTERM, SIGINT or the
 * death of its parent process starts one graceful shutdown. The handlers stay installed for the
 * life of the process, because a signal without a handler gets Node's default action and kills the
 * process before its leases are released; a second signal (a terminal's Ctrl-C reaches pnpm and the
 * app alike) is logged and ignored. A shutdown that overruns its bound ends the process with code 1.
 *
 * Shared by `serverProgram` (`pnpm start`, `serve`) and the CLI's `bin.ts`: one set of handlers per
 * process, whoever installs first. Exported as `@autoembed/api/lifecycle` so the CLI does not load
 * the HTTP stack for its other commands.
 *
 * The stop request is a Deferred: Effect code waits with `requested` (no polling). The parent watch
 * is the one poll left (Node has no event for the death of the parent process), and the hard exit
 * is a one-shot, unref'd timer: the bound must hold even when the runtime itself is stuck.
 */
import { Deferred, Effect, FiberId } from "effect"

export type StopReason = "SIGTERM" | "SIGINT" | "parent process exited"

/** What the controller needs from the process; tests pass a fake to drive it without real signals. */
export interface ProcessHost {
  readonly on: (signal: "SIGTERM" | "SIGINT", listener: () => void) => void
  readonly ppid: () => number
  readonly exit: (code: number) => void
}

export interface StopOptions {
  /** How long the shutdown may take after the first request before the process exits with code 1. */
  readonly hardExitAfterMs: number
  /** Where the notes about ignored signals and the hard exit go. */
  readonly log: (message: string) => void
}

export interface StopController {
  /**
   * Installs the signal handlers (once; a later call only replaces the options, as `serverProgram`
   * does when it has read the configuration).
   */
  readonly install: (options: StopOptions) => void
  /**
   * Also stops when the parent process exits (idempotent). Only for long-running processes (server,
   * worker): `pnpm start` killed must not leave its app serving and holding leases as an orphan.
   */
  readonly watchParent: () => void
  /** Calls `listener` with the first stop request (at once if it came already). Returns a function that removes it. */
  readonly onStop: (listener: (reason: StopReason) => void) => () => void
  /**
   * Calls `listener` with the first stop request only if no `onStop` listener is waiting for it: the
   * default action (the CLI interrupts a one-shot command; `worker` and `serve` stop by themselves).
   */
  readonly whenUnhandled: (listener: (reason: StopReason) => void) => void
  /** The first stop request, if one came. */
  readonly reason: () => StopReason | undefined
  /** Waits for the first stop request (counts as an `onStop` listener while it waits). */
  readonly requested: Effect.Effect<StopReason>
}

/** How often the parent is checked: an orphan notices within this long. */
export const PARENT_POLL_MS = 1000

/** What a process gets on top of its drain bounds before it exits anyway. */
export const HARD_EXIT_GRACE_MS = 5000

/**
 * Calls `onGone` once when the parent process is gone. An orphan is re-parented (to init or the
 * nearest subreaper), so its ppid changes; `process.ppid` reads the current value each time.
 */
const watchParent = (host: ProcessHost, onGone: () => void) => {
  const parent = host.ppid()
  // Started by init, or as PID 1 of a container: no parent whose exit would mean anything.
  if (parent <= 1) return
  const timer = setInterval(() => {
    if (host.ppid() === parent) return
    clearInterval(timer)
    onGone()
  }, PARENT_POLL_MS)
  // The watch alone must never keep a finished process alive.
  timer.unref()
}

export const makeStopController = (host: ProcessHost): StopController => {
  let first: StopReason | undefined
  let installed = false
  let watching = false
  let options: StopOptions = { hardExitAfterMs: HARD_EXIT_GRACE_MS, log: () => undefined }
  const listeners = new Set<(reason: StopReason) => void>()
  const fallbacks: Array<(reason: StopReason) => void> = []
  const stopped = Deferred.unsafeMake<StopReason>(FiberId.none)
  let waiting = 0

  const armHardExit = () => {
    const bound = options.hardExitAfterMs
    // Unref'd: a shutdown that finishes lets the process end on its own; only a stuck one meets this.
    setTimeout(() => {
      options.log(`shutdown did not finish within ${bound} ms; exiting`)
      host.exit(1)
    }, bound).unref()
  }

  const request = (reason: StopReason) => {
    if (first !== undefined) {
      options.log(
        reason === first
          ? `${reason} again: already shutting down`
          : `${reason}: already shutting down (after ${first})`
      )
      return
    }
    first = reason
    armHardExit()
    const heard = [...listeners]
    Deferred.unsafeDone(stopped, Effect.succeed(reason))
    if (heard.length === 0 && waiting === 0) { for (const fallback of fallbacks) fallback(reason) }
    for (const listener of heard) listener(reason)
  }

  return {
    install: (next) => {
      options = next
      if (installed) return
      installed = true
      host.on("SIGTERM", () => request("SIGTERM"))
      host.on("SIGINT", () => request("SIGINT"))
    },
    watchParent: () => {
      if (watching) return
      watching = true
      watchParent(host, () => request("parent process exited"))
    },
    onStop: (listener) => {
      if (first !== undefined) {
        const reason = first
        queueMicrotask(() => listener(reason))
        return () => undefined
      }
      listeners.add(listener)
      return () => void listeners.delete(listener)
    },
    whenUnhandled: (listener) => void fallbacks.push(listener),
    reason: () => first,
    requested: Effect.acquireUseRelease(
      Effect.sync(() => waiting++),
      () => Deferred.await(stopped),
      () => Effect.sync(() => waiting--)
    )
  }
}

let current: StopController | undefined

/** This process's controller (created on first use; installs nothing until `install`). */
export const processStop = (): StopController => (current ??= makeStopController({
  on: (signal, listener) => void process.on(signal, listener),
  ppid: () => process.ppid,
  exit: (code) => process.exit(code)
}))
