import { validate } from "@hyperjump/json-schema/openapi-3-1"
import { writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { pathToFileURL } from "node:url"

/**
 * The contract check of the API test suite: every response a test receives from a test server
 * (through `fetch`, the typed client included) is validated against the server's own
 * /openapi.json with a real OpenAPI 3.1 validator (@hyperjump/json-schema, the OpenAPI 3.1
 * schema dialect). `startTestServer` registers each server; its `stop()` fails the test file if any
 * answer broke the contract. Raw-socket tests (malformed HTTP) are out of its reach, on purpose.
 */

interface Operation {
  readonly path: string
  readonly method: string
  readonly pattern: RegExp
  readonly op: any
}

interface Watched {
  readonly docUri: string
  readonly doc: any
  readonly operations: ReadonlyArray<Operation>
  readonly violations: Array<string>
  readonly pending: Set<Promise<void>>
  checked: number
}

const watched = new Map<string, Watched>()
const originalFetch = globalThis.fetch
let installed = false
let counter = 0

/** A JSON pointer to the schema of one answer, as a URI fragment. */
const pointer = (...segments: ReadonlyArray<string>) =>
  "#" + segments.map((s) => "/" + encodeURIComponent(s.replace(/~/g, "~0").replace(/\//g, "~1"))).join("")

const operationsOf = (doc: any): Array<Operation> =>
  Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops as Record<string, unknown>).map(([method, op]) => ({
      path,
      method,
      op,
      pattern: new RegExp("^" + path.replace(/\{\w+\}/g, "[^/]+") + "$")
    }))
  )

const checkJson = async (w: Watched, schemaPointer: string, body: string, what: string) => {
  let value: unknown
  try {
    value = JSON.parse(body)
  } catch {
    w.violations.push(`${what}: the body is not JSON: ${body.slice(0, 200)}`)
    return
  }
  const output = await validate(w.docUri + schemaPointer, value as any)
  if (!output.valid) w.violations.push(`${what}: does not match ${schemaPointer}: ${body.slice(0, 300)}`)
}

/** Checks one answer against the document: its status is documented, its body matches that status's schema. */
const checkResponse = async (w: Watched, method: string, url: URL, res: Response) => {
  w.checked++
  const what = `${method} ${url.pathname} → ${res.status}`
  const body = await res.text()
  const type = res.headers.get("content-type") ?? ""
  if (!res.headers.get("x-request-id")) w.violations.push(`${what}: no x-request-id header`)
  const operation = w.operations.find((o) => o.method === method.toLowerCase() && o.pattern.test(url.pathname))
  if (operation === undefined) {
    // An unknown path (404) or a known one with another method (405): the one error body, from the document.
    if (res.status !== 404 && res.status !== 405) w.violations.push(`${what}: no such operation in /openapi.json`)
    else await checkJson(w, pointer("components", "schemas", "Error"), body, what)
    return
  }
  const answer = operation.op.responses[String(res.status)]
  if (answer === undefined) {
    w.violations.push(`${what}: status not documented for ${operation.method} ${operation.path}`)
    return
  }
  const media = Object.keys(answer.content ?? {})[0] ?? ""
  if (media !== "application/json") {
    if (!type.startsWith(media.split(";")[0]) && !(operation.path === "/static/{name}" && res.ok)) {
      w.violations.push(`${what}: content-type ${type}, documented ${media}`)
    }
    return
  }
  if (!type.startsWith("application/json")) w.violations.push(`${what}: content-type ${type}, documented JSON`)
  if (answer.content["application/json"].schema === undefined) return
  const segments = ["paths", operation.path, operation.method, "responses", String(res.status), "content"]
  await checkJson(w, pointer(...segments, "application/json", "schema"), body, what)
}

const install = () => {
  if (installed) return
  installed = true
  globalThis.fetch = async (input: any, init?: RequestInit) => {
    const res = await originalFetch(input, init)
    const url = new URL(input instanceof Request ? input.url : String(input))
    const w = watched.get(url.origin)
    if (w === undefined) return res
    const method = (init?.method ?? (input instanceof Request ? input.method : "GET")).toUpperCase()
    const check = checkResponse(w, method, url, res.clone()).catch((e) => {
      w.violations.push(`${method} ${url.pathname}: the check failed: ${e}`)
    })
    w.pending.add(check)
    void check.finally(() => w.pending.delete(check))
    return res
  }
}

/** Starts checking the answers of the server at `origin` against its own /openapi.json. */
export const watchContract = async (origin: string) => {
  install()
  const doc = await (await originalFetch(`${origin}/openapi.json`)).json()
  // The validator reads OpenAPI documents by their file name: *.openapi.json.
  const file = join(tmpdir(), `autoembed-${process.pid}-${++counter}.openapi.json`)
  writeFileSync(file, JSON.stringify(doc))
  const w: Watched = {
    docUri: pathToFileURL(file).href,
    doc,
    operations: operationsOf(doc),
    violations: [],
    pending: new Set(),
    checked: 0
  }
  watched.set(origin, w)
  return {
    /** Waits for the checks in flight; then every contract violation seen, and how many answers were checked. */
    finish: async () => {
      await Promise.all([...w.pending])
      watched.delete(origin)
      return { violations: w.violations, checked: w.checked }
    }
  }
}

/** Validates `value` against the schema at `path` (JSON pointer segments) of an OpenAPI document. */
export const validateInDocument = async (doc: unknown, path: ReadonlyArray<string>, value: unknown) => {
  const file = join(tmpdir(), `autoembed-${process.pid}-${++counter}.openapi.json`)
  writeFileSync(file, JSON.stringify(doc))
  return (await validate(pathToFileURL(file).href + pointer(...path), value as any)).valid
}
