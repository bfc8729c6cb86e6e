import { Either, ParseResult, Schema } from "effect"
import { Api } from "./Api.js"
import { answerSchema, type EndpointSpec, fillPath, type Received, type Request } from "./Endpoint.js"
import { flattenQuery } from "./QueryString.js"
import { ErrorResponse } from "./Schemas.js"

/** An error answer of the API (or an answer the contract does not describe), with the server's code. */
export class ApiClientError extends Schema.TaggedError<ApiClientError>()("ApiClientError", {
  status: Schema.Int,
  code: Schema.String,
  message: Schema.String,
  details: Schema.Unknown,
  requestId: Schema.String
}) {}

export interface ClientOptions {
  /** The server's origin, e.g. http://127.0.0.1:8080. */
  readonly baseUrl: string
  /** AUTOEMBED_API_TOKEN, sent as a bearer token. */
  readonly token?: string
  /** Defaults to the global fetch. */
  readonly fetch?: typeof globalThis.fetch
}

/** One method per operation of `Api`, named by its operationId, typed by its schemas. */
export type Client = { readonly [K in keyof Api]: (request: Request<Api[K]>) => Promise<Received<Api[K]>> }

const invalid = (status: number, requestId: string, message: string, details: unknown = null) =>
  new ApiClientError({ status, code: "invalid_answer", message, details, requestId })

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

const call = async (e: EndpointSpec, request: Request<EndpointSpec>, options: ClientOptions) => {
  const url = new URL(fillPath(e.path, request.params as Record<string, string> | undefined), options.baseUrl)
  if (e.query && request.query) url.search = flattenQuery(Schema.encodeSync(e.query.form)(request.query)).toString()
  const headers: Record<string, string> = options.token ? { authorization: `Bearer ${options.token}` } : {}
  if (request.body !== undefined) headers["content-type"] = "application/json"
  const res = await (options.fetch ?? globalThis.fetch)(url, {
    method: e.method.toUpperCase(),
    headers,
    ...(request.body !== undefined ? { body: JSON.stringify(request.body) } : {})
  })
  const requestId = res.headers.get("x-request-id") ?? ""
  const text = await res.text()
  if (!res.ok) {
    const body = parseJson(text)
    const decoded = Schema.decodeUnknownEither(ErrorResponse)(body)
    if (Either.isLeft(decoded)) throw invalid(res.status, requestId, `HTTP ${res.status} without an error body`, body)
    const { code, details, message } = decoded.right.error
    throw new ApiClientError({ status: res.status, code, message, details, requestId })
  }
  if (!(res.status in e.success)) throw invalid(res.status, requestId, `${e.id} does not answer ${res.status}`)
  const schema = answerSchema(e, res.status)
  // Answers without a schema (metrics, pages, the document itself) come back as text.
  if (schema === undefined) return { status: res.status, body: text, requestId }
  const decoded = Schema.decodeUnknownEither(schema)(parseJson(text))
  if (Either.isLeft(decoded)) {
    throw invalid(res.status, requestId, ParseResult.TreeFormatter.formatErrorSync(decoded.left).slice(0, 500))
  }
  return { status: res.status, body: decoded.right, requestId }
}

/**
 * A typed client of the HTTP API, for tests and for TypeScript services:
 * `await client.search({ query: { q: "embeddings", limit: 5 } })` resolves to `{ status, body, requestId }`,
 * with `body` decoded by the answer's schema; an error answer rejects with an `ApiClientError`.
 */
export const makeClient = (options: ClientOptions): Client =>
  Object.fromEntries(
    Object.entries(Api).map(([id, e]) => [id, (request: Request<EndpointSpec>) => call(e, request ?? {}, options)])
  ) as unknown as Client
