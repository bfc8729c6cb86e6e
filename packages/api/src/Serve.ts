import { Either, ParseResult, Schema } from "effect"
import type { Context, Hono, MiddlewareHandler } from "hono"
import type { Api } from "./contract/Api.js"
import { answerSchema, type EndpointSpec, honoPath, type Input, type Success } from "./contract/Endpoint.js"
import { nestQuery } from "./contract/QueryString.js"
import { type ApiEnv, readJson } from "./Http.js"

/** Implements one operation of the contract: gets decoded input, returns one of its documented answers. */
export type Handler<E extends EndpointSpec> = (input: Input<E>, c: Context<ApiEnv>) => Promise<Success<E>>

/** A handler for every operation: a route the contract lacks, or an operation without a route, does not compile. */
export type Handlers = { readonly [K in keyof Api]: Handler<Api[K]> }

export interface Guards {
  readonly write: MiddlewareHandler
  readonly read: MiddlewareHandler
}

/** Query parameters through the operation's form, then core's request schema (bounds, defaults). */
const readQuery = (c: Context<ApiEnv>, query: NonNullable<EndpointSpec["query"]>) => {
  const schema = Schema.compose(query.form, query.request, { strict: false })
  const decoded = Schema.decodeUnknownEither(schema, { errors: "all" })(nestQuery(query.form, c.req.query()))
  if (Either.isLeft(decoded)) throw decoded.left
  return decoded.right
}

/**
 * An answer the schema does not describe is a bug of ours, never sent: unknown fields are refused
 * too, so a field added to core's result without the contract following fails (500) in the tests.
 */
const encodeAnswer = (e: EndpointSpec, status: number, schema: Schema.Schema<any, any, never>, body: unknown) => {
  const encoded = Schema.encodeEither(schema, { onExcessProperty: "error", errors: "all" })(body)
  if (Either.isRight(encoded)) return encoded.right
  const problem = ParseResult.TreeFormatter.formatErrorSync(encoded.left)
  throw new Error(`The ${status} answer of ${e.id} does not match its schema: ${problem}`)
}

/** Registers `handler` for `e` on `app`: its auth guard, input decoding and answer encoding. */
export const serve = <E extends EndpointSpec>(app: Hono<ApiEnv>, e: E, handler: Handler<E>, guards: Guards) => {
  const guard: Array<MiddlewareHandler> = e.auth === "none" ? [] : [guards[e.auth]]
  app.on(e.method.toUpperCase(), [honoPath(e.path)], ...guard, async (c) => {
    const input = {
      params: e.params ? c.req.param() : undefined,
      query: e.query ? readQuery(c, e.query) : undefined,
      body: e.body ? await readJson(c, e.body.schema, e.body.required ? {} : { emptyAs: {} }) : undefined
    } as Input<E>
    const answer = await handler(input, c) as { status: number; body: unknown; headers?: Record<string, string> }
    const schema = answerSchema(e, answer.status)
    const status = answer.status as 200
    if (schema !== undefined) return c.json(encodeAnswer(e, answer.status, schema, answer.body), status, answer.headers)
    const documented = e.success[answer.status]
    const type = documented !== undefined && "contentType" in documented ? documented.contentType : "text/plain"
    return c.body(String(answer.body), status, { "content-type": type, ...answer.headers })
  })
}
