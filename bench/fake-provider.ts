/**
 * Runs the wire-faithful fake provider (test/fakes/FakeProviderServer.ts) in its own process, as a
 * real provider would be, so its CPU work (JSON, vectors) is not charged to the pipeline's event loop.
 *
 * Protocol on stdin/stdout, one JSON line each:
 *   start-up        → {"ready":true,"openaiBaseUrl":...,"ollamaHost":...}
 *   {"reset":{...}} → {"ok":true}            behaviour overrides, requests forgotten
 *   {"stats":true}  → {"requests":n,"inputs":n,"maxInFlight":n}
 * It exits when stdin closes.
 */
import * as Readline from "node:readline"
import { type FakeBehaviour, startFakeProviderServer } from "../test/fakes/FakeProviderServer.js"

const initial = JSON.parse(process.argv[2] ?? "{}") as Partial<FakeBehaviour>
const server = await startFakeProviderServer(initial)
const send = (o: unknown) => process.stdout.write(JSON.stringify(o) + "\n")
send({ ready: true, openaiBaseUrl: server.openaiBaseUrl, ollamaHost: server.ollamaHost })

const lines = Readline.createInterface({ input: process.stdin })
lines.on("line", (line) => {
  const msg = JSON.parse(line) as { reset?: Partial<FakeBehaviour>; stats?: boolean }
  if (msg.reset) {
    server.reset(msg.reset)
    send({ ok: true })
  } else if (msg.stats) {
    const reqs = server.embedRequests()
    send({ requests: reqs.length, inputs: server.inputCount(), batchSizes: reqs.map((r) => r.inputCount) })
  }
})
lines.on("close", () => {
  void server.close().finally(() => process.exit(0))
})
