import { afterEach, beforeEach, describe, expect, it, vi } from "vitest"
import { makeStopController, PARENT_POLL_MS, type ProcessHost, type StopReason } from "../packages/api/src/Lifecycle.js"

/** A process without real signals: `send` plays the kernel, `ppid` is settable, `exits` records exit codes. */
const fakeHost = (ppid = 4242) => {
  const handlers = new Map<string, Array<() => void>>()
  const host = {
    ppid,
    exits: [] as Array<number>,
    on: (signal: string, listener: () => void) =>
      void handlers.set(signal, [...(handlers.get(signal) ?? []), listener]),
    send: (signal: "SIGTERM" | "SIGINT") => (handlers.get(signal) ?? []).forEach((h) => h()),
    handlerCount: (signal: string) => handlers.get(signal)?.length ?? 0
  }
  const port: ProcessHost = { on: host.on, ppid: () => host.ppid, exit: (code) => void host.exits.push(code) }
  return { host, port }
}

describe("stop controller (signals, parent watch, hard exit)", () => {
  beforeEach(() => void vi.useFakeTimers())
  afterEach(() => void vi.useRealTimers())

  it("the first SIGTERM starts one shutdown; a second is logged and ignored", () => {
    const { host, port } = fakeHost()
    const logs: Array<string> = []
    const stop = makeStopController(port)
    stop.install({ hardExitAfterMs: 20_000, log: (m) => logs.push(m) })
    const reasons: Array<StopReason> = []
    stop.onStop((r) => reasons.push(r))
    host.send("SIGTERM")
    host.send("SIGTERM")
    host.send("SIGINT")
    expect(reasons).toEqual(["SIGTERM"])
    expect(logs).toEqual(["SIGTERM again: already shutting down", "SIGINT: already shutting down (after SIGTERM)"])
    expect(stop.reason()).toBe("SIGTERM")
  })

  it("installs the handlers once, however often install is called; the latest options count", () => {
    const { host, port } = fakeHost()
    const stop = makeStopController(port)
    stop.install({ hardExitAfterMs: 20_000, log: () => undefined })
    stop.install({ hardExitAfterMs: 35_000, log: () => undefined })
    expect(host.handlerCount("SIGTERM")).toBe(1)
    expect(host.handlerCount("SIGINT")).toBe(1)
    host.send("SIGINT")
    vi.advanceTimersByTime(34_999)
    expect(host.exits).toEqual([])
    vi.advanceTimersByTime(1)
    expect(host.exits).toEqual([1])
  })

  it("a shutdown that overruns its bound exits with 1 and says why; the timer does not hold the process", () => {
    const { host, port } = fakeHost()
    const logs: Array<string> = []
    const stop = makeStopController(port)
    stop.install({ hardExitAfterMs: 1000, log: (m) => logs.push(m) })
    host.send("SIGTERM")
    expect(vi.getTimerCount()).toBe(1)
    vi.advanceTimersByTime(1000)
    expect(host.exits).toEqual([1])
    expect(logs).toEqual(["shutdown did not finish within 1000 ms; exiting"])
  })

  it("the default action runs only when nobody waits for the stop request", async () => {
    const { host, port } = fakeHost()
    const stop = makeStopController(port)
    stop.install({ hardExitAfterMs: 1000, log: () => undefined })
    const fallback = vi.fn()
    stop.whenUnhandled(fallback)
    const off = stop.onStop(() => undefined)
    off()
    host.send("SIGTERM")
    expect(fallback).toHaveBeenCalledWith("SIGTERM")

    const second = fakeHost()
    const waited = makeStopController(second.port)
    waited.install({ hardExitAfterMs: 1000, log: () => undefined })
    const unused = vi.fn()
    waited.whenUnhandled(unused)
    const reason = new Promise<StopReason>((resolve) => waited.onStop(resolve))
    second.host.send("SIGINT")
    expect(await reason).toBe("SIGINT")
    expect(unused).not.toHaveBeenCalled()
    // A listener that comes after the request still hears it.
    expect(await new Promise<StopReason>((resolve) => waited.onStop(resolve))).toBe("SIGINT")
  })

  it("stops when the parent process exits (the orphan is re-parented), within one poll", () => {
    const { host, port } = fakeHost(4242)
    const stop = makeStopController(port)
    stop.install({ hardExitAfterMs: 1000, log: () => undefined })
    stop.watchParent()
    stop.watchParent()
    const reasons: Array<StopReason> = []
    stop.onStop((r) => reasons.push(r))
    vi.advanceTimersByTime(PARENT_POLL_MS * 5)
    expect(reasons).toEqual([])
    host.ppid = 1
    vi.advanceTimersByTime(PARENT_POLL_MS)
    expect(reasons).toEqual(["parent process exited"])
    // The watch ends with its one request; only the hard-exit timer is left.
    expect(vi.getTimerCount()).toBe(1)
  })

  it("does not watch a parent that is init or absent (a container's PID 1, a systemd service)", () => {
    const { port } = fakeHost(1)
    const stop = makeStopController(port)
    stop.watchParent()
    expect(vi.getTimerCount()).toBe(0)
  })
})
