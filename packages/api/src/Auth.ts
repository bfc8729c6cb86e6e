import { Option, Redacted } from "effect"
import type { Context, MiddlewareHandler } from "hono"
import { bearerAuth } from "hono/bearer-auth"
import { ApiError, errorBody } from "./Errors.js"
import type { ApiEnv } from "./Http.js"

export interface AuthSettings {
  readonly apiToken: Option.Option<Redacted.Redacted<string>>
  readonly protectReads: boolean
}

const REALM = "autoembed"

/** The 401 answer in the API's one error shape, with the request id the request-id middleware set. */
const unauthorized = (message: string) => (c: Context) => {
  const error = new ApiError({ status: 401, code: "unauthorized", message })
  return c.json(errorBody(error, (c as Context<ApiEnv>).get("requestId")), 401, {
    "www-authenticate": `Bearer realm="${REALM}"`
  })
}

/**
 * Checks `Authorization: Bearer <token>` when a token is configured (hono's bearer-auth: the token is
 * compared in constant time); a no-op otherwise. A malformed header is answered like a wrong token.
 */
export const requireToken = (settings: AuthSettings): MiddlewareHandler<ApiEnv> => {
  if (Option.isNone(settings.apiToken)) return async (_c, next) => next()
  const invalid = unauthorized("The bearer token is not valid")
  return bearerAuth({
    token: Redacted.value(settings.apiToken.value),
    realm: REALM,
    noAuthenticationHeader: { message: unauthorized("This route needs Authorization: Bearer <AUTOEMBED_API_TOKEN>") },
    invalidAuthenticationHeader: { message: invalid },
    invalidToken: { message: invalid }
  })
}

/** Mutating routes always need the token (when set); read routes only with AUTOEMBED_PROTECT_READS=true. */
export const authFor = (settings: AuthSettings) => {
  const check = requireToken(settings)
  const open: MiddlewareHandler<ApiEnv> = async (_c, next) => next()
  return { write: check, read: settings.protectReads ? check : open }
}
