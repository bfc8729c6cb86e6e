import { Effect, Either, Exit, Schema } from "effect"
import type { Context } from "hono"
import { ApiError, type HandledError, mapCause, Mapped } from "./Errors.js"
import type { ApiRuntime, ApiServices } from "./Runtime.js"

/** Hono's per-request variables. */
export type ApiEnv = { Variables: { requestId: string } }

/** Bodies above this are refused with 413 before they are read into memory. */
export const MAX_BODY_BYTES = 1024 * 1024

/** A failed core call, already mapped to its answer (`Errors.mapCause`); `App.onError` sends it. */
export class HandlerFailure extends Schema.TaggedError<HandlerFailure>()("HandlerFailure", { mapped: Mapped }) {}

/**
 * Runs a core effect on the shared runtime. Only effects whose errors the API knows how to answer
 * (`HandledError`) are accepted; a failure is mapped from its typed Cause (defects and
 * interruption included) and thrown for `App.onError`.
 */
export const runWith =
  (runtime: ApiRuntime) => async <A, E extends HandledError>(effect: Effect.Effect<A, E, ApiServices>): Promise<A> => {
    const exit = await runtime.runPromiseExit(effect)
    if (Exit.isSuccess(exit)) return exit.value
    throw new HandlerFailure({ mapped: mapCause(exit.cause) })
  }

export type Run = ReturnType<typeof runWith>

/**
 * No request schema nests deeper than a few levels; deeper input is refused before parsing (it would only
 * cost stack).
 */
const MAX_JSON_DEPTH = 32

/** Deepest [ / { nesting outside strings, stopping early once past the limit. */
const nestingDepth = (text: string): number => {
  let depth = 0
  let max = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i)
    if (inString) {
      if (ch === 92) i++ // backslash: skip the escaped character
      else if (ch === 34) inString = false
    } else if (ch === 34) inString = true
    else if (ch === 91 || ch === 123) {
      if (++depth > max) max = depth
      if (max > MAX_JSON_DEPTH) return max
    } else if (ch === 93 || ch === 125) depth--
  }
  return max
}

/**
 * The body as text. A client that goes away before sending all of it (the request timeout closed
 * it, or it dropped the connection) is the client's doing: a 400 nobody reads, not a logged 500.
 */
const bodyText = async (c: Context<ApiEnv>): Promise<string> => {
  try {
    return await c.req.text()
  } catch (e) {
    // Node's IncomingMessage fails with "aborted" (ECONNRESET); other errors, such as the body limit's, pass on.
    if ((e as NodeJS.ErrnoException)?.code === "ECONNRESET") {
      throw new ApiError({
        status: 400,
        code: "body_incomplete",
        message: "The connection closed before the body was complete"
      })
    }
    throw e
  }
}

/**
 * Half of a UTF-16 surrogate pair on its own. JSON lets a client write one ("\ud800"), but it is not
 * Unicode text: it would reach PostgreSQL as U+FFFD, silently changing what was sent.
 */
const LONE_SURROGATE = /\p{Cs}/u

/** Why a string cannot be stored as sent, if it cannot: PostgreSQL text holds neither NUL nor lone surrogates. */
const textProblem = (s: string): string | undefined =>
  s.includes("\u0000")
    ? "contains a NUL character (\\u0000), which PostgreSQL text cannot hold"
    : LONE_SURROGATE.test(s)
    ? "contains a lone UTF-16 surrogate (half of a pair, such as \\ud800), which is not Unicode text"
    : undefined

const fieldPath = (path: string, key: string | number) =>
  typeof key === "number" ? `${path}[${key}]` : path === "" ? key : `${path}.${key}`

/**
 * The first string or object key in a parsed body that cannot be stored as sent, named by its path
 * (messages[0].content).
 */
export const unstorableText = (
  value: unknown,
  path = ""
): { readonly field: string; readonly problem: string } | undefined => {
  if (typeof value === "string") {
    const problem = textProblem(value)
    return problem === undefined ? undefined : { field: path === "" ? "the body" : path, problem }
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = unstorableText(value[i], fieldPath(path, i))
      if (found) return found
    }
    return undefined
  }
  if (value !== null && typeof value === "object") {
    for (const [key, item] of Object.entries(value)) {
      const keyProblem = textProblem(key)
      if (keyProblem !== undefined) return { field: `a key in ${path === "" ? "the body" : path}`, problem: keyProblem }
      const found = unstorableText(item, fieldPath(path, key))
      if (found) return found
    }
  }
  return undefined
}

const isJson = (type: string) => /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(type.trim())

/**
 * Reads a JSON body and decodes it with `schema`: 415 for another media type, 400 for bad JSON
 * or a missing body, 422 for text that cannot be stored as sent (NUL, lone surrogates; the message
 * names the field) and (via the ParseError) for a body that does not match. Unknown fields are
 * refused, so a misspelt option is an error instead of silently ignored.
 */
export const readJson = async <A, I>(
  c: Context<ApiEnv>,
  schema: Schema.Schema<A, I, never>,
  options: { readonly emptyAs?: unknown } = {}
): Promise<A> => {
  const type = c.req.header("content-type")
  if (type !== undefined && type.trim() !== "" && !isJson(type)) {
    throw new ApiError({
      status: 415,
      code: "unsupported_media_type",
      message: "Send the body as application/json",
      details: { content_type: type.slice(0, 100) }
    })
  }
  const text = await bodyText(c)
  let value: unknown
  if (text.trim() === "") {
    if (options.emptyAs === undefined) {
      throw new ApiError({ status: 400, code: "empty_body", message: "This route needs a JSON body" })
    }
    value = options.emptyAs
  } else {
    if (type === undefined || type.trim() === "") {
      throw new ApiError({
        status: 415,
        code: "unsupported_media_type",
        message: "Send the body with Content-Type: application/json"
      })
    }
    if (nestingDepth(text) > MAX_JSON_DEPTH) {
      throw new ApiError({
        status: 422,
        code: "validation_failed",
        message: `The body is nested deeper than ${MAX_JSON_DEPTH} levels`,
        details: { max_depth: MAX_JSON_DEPTH }
      })
    }
    try {
      value = JSON.parse(text)
    } catch (e) {
      throw new ApiError({
        status: 400,
        code: "invalid_json",
        message: "The body is not valid JSON",
        details: { parser: String((e as Error).message).slice(0, 200) }
      })
    }
  }
  const unstorable = unstorableText(value)
  if (unstorable) {
    throw new ApiError({
      status: 422,
      code: "validation_failed",
      message: `${unstorable.field} ${unstorable.problem}`,
      details: [{ path: unstorable.field, message: unstorable.problem }]
    })
  }
  const decoded = Schema.decodeUnknownEither(schema, { errors: "all", onExcessProperty: "error" })(value)
  if (Either.isLeft(decoded)) throw decoded.left
  return decoded.right
}
