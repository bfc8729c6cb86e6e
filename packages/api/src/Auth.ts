import { Option, Redacted } from "effect"
import type { MiddlewareHandler } from "hono"
import { createHash, timingSafeEqual } from "node:crypto"
import { ApiError } from "./Errors.js"

export interface AuthSettings {
  readonly apiToken: Option.Option<Redacted.Redacted<string>>
  readonly protectReads: boolean
}

/**
 * Compares in constant time. Both sides are hashed first so the buffers always have equal length
 * (timingSafeEqual requires it) and the token's length does not leak through an early return.
 */
export const tokenMatches = (given: string, expected: string): boolean => {
  const a = createHash("sha256").update(given, "utf8").digest()
  const b = createHash("sha256").update(expected, "utf8").digest()
  return timingSafeEqual(a, b)
}

const challenge = { "www-authenticate": "Bearer realm=\"autoembed\"" }

/** Checks `Authorization: Bearer <token>` when a token is configured; a no-op otherwise. */
export const requireToken = (settings: AuthSettings): MiddlewareHandler => {
  if (Option.isNone(settings.apiToken)) return async (_c, next) => next()
  const expected = Redacted.value(settings.apiToken.value)
  return async (c, next) => {
    const header = c.req.header("authorization")
    if (header === undefined || header.trim() === "") {
      throw new ApiError({
        status: 401,
        code: "unauthorized",
        message: "This route needs Authorization: Bearer <AUTOEMBED_API_TOKEN>",
        headers: challenge
      })
    }
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header)
    if (!match || !tokenMatches(match[1], expected)) {
      throw new ApiError({
        status: 401,
        code: "unauthorized",
        message: "The bearer token is not valid",
        headers: challenge
      })
    }
    await next()
  }
}

/** Mutating routes always need the token (when set); read routes only with AUTOEMBED_PROTECT_READS=true. */
export const authFor = (settings: AuthSettings) => {
  const check = requireToken(settings)
  const open: MiddlewareHandler = async (_c, next) => next()
  return { write: check, read: settings.protectReads ? check : open }
}
