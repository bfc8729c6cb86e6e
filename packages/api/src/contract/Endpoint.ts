import type { Schema } from "effect"

/**
 * One HTTP operation, described once: the server registers its handler from it (with validation
 * and response encoding), `/openapi.json` and the docs page are generated from it, and the typed
 * client calls it. Nothing else lists routes, so the three cannot drift apart.
 */
export interface EndpointSpec {
  /** The OpenAPI operationId and the typed client's method name. */
  readonly id: string
  readonly method: "get" | "post" | "delete"
  /** OpenAPI path syntax (`/v1/embeddings/backfill/{id}`). */
  readonly path: `/${string}`
  readonly summary: string
  readonly tag: "ingest" | "search" | "embeddings" | "sets" | "operations"
  /** write: needs the token when one is set; read: only with AUTOEMBED_PROTECT_READS; none: never. */
  readonly auth: "write" | "read" | "none"
  readonly params?: PathParams
  readonly query?: QuerySpec
  readonly body?: BodySpec
  /** The answers of a successful call, by status. */
  readonly success: Readonly<Record<number, Answer>>
  /** The error answers this operation documents (all with the one error body), by status. */
  readonly errors: Readonly<Record<number, string>>
}

/**
 * Path parameters: always strings on the wire (percent-decoded before the handler sees them), checked
 * by the handler (an unknown id is a 404, not a 422). `maxLength` (default 64) is what the document
 * promises; set names run longer.
 */
export type PathParams = ReadonlyArray<
  { readonly name: string; readonly description: string; readonly maxLength?: number }
>

/**
 * A query string: `form` reads the strings (digits, comma lists; a Record-valued field collects the
 * `<field>.<key>` parameters), `request` is the typed request core takes, which `form` decodes to.
 */
export interface QuerySpec {
  readonly form: Schema.Schema<any, any, never> & { readonly fields: Schema.Struct.Fields }
  readonly request: Schema.Schema<any, any, never>
}

export interface BodySpec {
  readonly schema: Schema.Schema<any, any, never>
  /** Optional bodies decode `{}` when the request has none. */
  readonly required: boolean
}

/** A JSON answer validated by `schema`, or another media type (`contentType`) served as text. */
export type Answer =
  | { readonly description: string; readonly schema: Schema.Schema<any, any, never> }
  | { readonly description: string; readonly contentType: string }

/** Keeps the literal types of a spec, so handlers and the client are typed from it. */
export const endpoint = <const E extends EndpointSpec>(spec: E): E => spec

type Headers = Readonly<Record<string, string>>

/** What a handler returns for an endpoint: one of its success statuses with that status's body. */
export type Success<E extends EndpointSpec> = {
  [S in keyof E["success"] & number]: E["success"][S] extends { readonly schema: Schema.Schema<infer A, any, never> }
    ? { readonly status: S; readonly body: A; readonly headers?: Headers }
    : { readonly status: S; readonly body: string; readonly headers?: Headers }
}[keyof E["success"] & number]

/** The same, as the client receives it: the wire (encoded) form decoded back into the schema's type. */
export type Received<E extends EndpointSpec> = Success<E> & { readonly requestId: string }

/** What a handler gets: decoded path parameters, query and body. */
export interface Input<E extends EndpointSpec> {
  readonly params: E["params"] extends PathParams ? Readonly<Record<E["params"][number]["name"], string>> : undefined
  readonly query: E["query"] extends QuerySpec ? Schema.Schema.Type<E["query"]["request"]> : undefined
  readonly body: E["body"] extends BodySpec ? Schema.Schema.Type<E["body"]["schema"]> : undefined
}

/** What a client sends: the query in its typed form (numbers, lists), the body as JSON. */
export type Request<E extends EndpointSpec> =
  & (E["params"] extends PathParams ? { readonly params: Readonly<Record<E["params"][number]["name"], string>> }
    : { readonly params?: undefined })
  & (E["query"] extends QuerySpec ? { readonly query: Schema.Schema.Type<E["query"]["form"]> }
    : { readonly query?: undefined })
  & (E["body"] extends BodySpec
    ? E["body"]["required"] extends true ? { readonly body: Schema.Schema.Encoded<E["body"]["schema"]> }
    : { readonly body?: Schema.Schema.Encoded<E["body"]["schema"]> }
    : { readonly body?: undefined })

/** The JSON answer's schema of a status, when it is JSON. */
export const answerSchema = (spec: EndpointSpec, status: number): Schema.Schema<any, any, never> | undefined => {
  const answer = spec.success[status]
  return answer !== undefined && "schema" in answer ? answer.schema : undefined
}

/** OpenAPI path syntax to Hono's (`{id}` to `:id`). */
export const honoPath = (path: string) => path.replace(/\{(\w+)\}/g, ":$1")

/** Fills a path's parameters (`{id}`), encoded. */
export const fillPath = (path: string, params: Readonly<Record<string, string>> | undefined) =>
  path.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(params?.[name] ?? ""))
