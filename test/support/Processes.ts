import { type ChildProcess, spawn } from "node:child_process"
import * as Path from "node:path"

export const repoRoot = Path.resolve(import.meta.dirname, "../..")

/** Starts `autoembed <args>` from source in its own OS process; output goes to the returned buffer. */
export const startCli = (args: ReadonlyArray<string>, env: Record<string, string>) => {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", "--conditions=source", "packages/cli/src/bin.ts", ...args],
    {
      cwd: repoRoot,
      env: { ...process.env, AUTOEMBED_LOG_LEVEL: "warning", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    }
  )
  const output = { stdout: "", stderr: "" }
  child.stdout!.on("data", (d) => (output.stdout += String(d)))
  child.stderr!.on("data", (d) => (output.stderr += String(d)))
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  return { child, output, exited }
}

export const stop = async (child: ChildProcess, signal: NodeJS.Signals = "SIGTERM") => {
  if (child.exitCode !== null || child.signalCode !== null) return
  const done = new Promise((r) => child.once("exit", r))
  child.kill(signal)
  await done
}

export const waitFor = async (check: () => Promise<boolean>, timeoutMs: number, what: string) => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

/** Runs `autoembed <args>` to its end: its exit code and output. */
export const runCli = async (args: ReadonlyArray<string>, env: Record<string, string>) => {
  const run = startCli(args, env)
  const code = await run.exited
  return { code, stdout: run.output.stdout, stderr: run.output.stderr }
}
