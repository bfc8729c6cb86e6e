import { JSONSchema, Option, SchemaAST } from "effect"
import { Api } from "./Api.js"
import type { EndpointSpec, QuerySpec } from "./Endpoint.js"
import { ErrorResponse } from "./Schemas.js"

type ToJson = (ast: SchemaAST.AST) => unknown

const operations: ReadonlyArray<EndpointSpec> = Object.values(Api)

/** An optional field's type is `T | undefined`; a query parameter is simply absent instead. */
const withoutUndefined = (ast: SchemaAST.AST): SchemaAST.AST => {
  if (!SchemaAST.isUnion(ast)) return ast
  const types = ast.types.filter((t) => !SchemaAST.isUndefinedKeyword(t))
  return types.length === 1 ? types[0] : SchemaAST.Union.make(types)
}

const descriptionOf = (annotated: SchemaAST.Annotated) =>
  Option.match(SchemaAST.getDescriptionAnnotation(annotated), {
    onNone: () => ({}),
    onSome: (description) => ({ description })
  })

/**
 * Effect marks `unknown` / `any` / `object` with `$id: "/schemas/unknown"` and a title; in an
 * OpenAPI document such an `$id` starts a schema resource of its own (the same id twice, resolved
 * against the document's URL), which validators reject. The keywords say nothing: drop them.
 */
const withoutKeywordIds = (json: unknown): unknown => {
  if (Array.isArray(json)) return json.map(withoutKeywordIds)
  if (json === null || typeof json !== "object") return json
  const out: Record<string, unknown> = {}
  const record = json as Record<string, unknown>
  const marker = typeof record.$id === "string" && record.$id.startsWith("/schemas/")
  for (const [key, value] of Object.entries(record)) {
    if (marker && (key === "$id" || key === "title")) continue
    out[key] = withoutKeywordIds(value)
  }
  return out
}

/** A Record-valued field of a query form is sent as one `<field>.<key>` parameter per entry. */
const isRecord = (ast: SchemaAST.AST) => SchemaAST.isTypeLiteral(ast) && ast.indexSignatures.length > 0

const queryParameters = (query: QuerySpec, toJson: ToJson) =>
  (SchemaAST.isTypeLiteral(query.form.ast) ? query.form.ast.propertySignatures : []).map((ps) => {
    const type = withoutUndefined(ps.type)
    const name = String(ps.name)
    if (isRecord(type)) {
      return {
        name: `${name}.{key}`,
        in: "query",
        required: false,
        // The one record field today is the search filter: filter.chat_id=42, filter.sent_at.gte=2024-05-01.
        description: `One parameter per entry (${name}.chat_id=42, ${name}.sent_at.gte=2024-05-01)`,
        ...descriptionOf(type),
        schema: { type: "string", maxLength: 200 }
      }
    }
    return { name, in: "query", required: !ps.isOptional, ...descriptionOf(type), schema: toJson(type) }
  })

const operationOf = (e: EndpointSpec, toJson: ToJson) => {
  const parameters = [
    ...(e.params ?? []).map((p) => ({
      name: p.name,
      in: "path",
      required: true,
      description: p.description,
      schema: { type: "string", maxLength: p.maxLength ?? 64 }
    })),
    ...(e.query ? queryParameters(e.query, toJson) : [])
  ]
  const responses: Record<string, unknown> = {}
  for (const [status, answer] of Object.entries(e.success)) {
    responses[status] = {
      description: answer.description,
      content: "schema" in answer
        ? { "application/json": { schema: toJson(answer.schema.ast) } }
        : { [answer.contentType]: {} }
    }
  }
  for (const [status, description] of Object.entries(e.errors)) {
    responses[status] = { description, content: { "application/json": { schema: toJson(ErrorResponse.ast) } } }
  }
  return {
    operationId: e.id,
    summary: e.summary,
    tags: [e.tag],
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(e.body
      ? {
        requestBody: {
          required: e.body.required,
          content: { "application/json": { schema: toJson(e.body.schema.ast) } }
        }
      }
      : {}),
    responses,
    ...(e.auth === "write"
      ? { security: [{ bearer: [] }] }
      : e.auth === "read"
      ? { security: [{ bearer: [] }, {}] }
      : {}),
    "x-autoembed-auth": e.auth
  }
}

const listOperations = (auth: EndpointSpec["auth"]) =>
  operations.filter((e) => e.auth === auth).map((e) => `${e.method.toUpperCase()} ${e.path}`).join(", ")

/** Which operations need the token, in words (each operation's x-autoembed-auth says it too). */
const authDescription = () =>
  `With AUTOEMBED_API_TOKEN set, write routes always need "Authorization: Bearer <token>": ${
    listOperations("write")
  }. Read routes need it only with AUTOEMBED_PROTECT_READS=true: ${listOperations("read")}. ` +
  `Open routes never need it: ${listOperations("none")}. Each operation's x-autoembed-auth says which kind it is.`

/** The OpenAPI 3.1 document of `Api`, from the same Effect Schemas that decode requests and encode answers. */
export const openApiDocument = (options: { readonly version: string; readonly serverUrl?: string }) => {
  const definitions: Record<string, any> = {}
  const toJson: ToJson = (ast) =>
    withoutKeywordIds(
      JSONSchema.fromAST(ast, { definitions, definitionPath: "#/components/schemas/", target: "openApi3.1" })
    )
  const paths: Record<string, Record<string, unknown>> = {}
  for (const e of operations) paths[e.path] = { ...paths[e.path], [e.method]: operationOf(e, toJson) }
  return {
    openapi: "3.1.0",
    info: {
      title: "autoembed",
      version: options.version,
      description:
        "Keeps pgvector embeddings of PostgreSQL rows up to date and serves semantic search. Errors are always " +
        "{\"error\": {\"code\", \"message\", \"details\", \"request_id\"}}; every response carries x-request-id. " +
        "405 answers a known path with another method. " + authDescription()
    },
    ...(options.serverUrl ? { servers: [{ url: options.serverUrl }] } : {}),
    tags: [
      { name: "ingest", description: "Write messages and extraction results" },
      { name: "search", description: "Semantic search" },
      { name: "embeddings", description: "Pipeline status, backfill, retries" },
      {
        name: "sets",
        description: "Embedding sets: several models side by side per source, one active for search; " +
          "add, compare, activate, roll back, drop"
      },
      { name: "operations", description: "Health, readiness, metrics, documentation" }
    ],
    paths,
    components: {
      schemas: withoutKeywordIds(definitions),
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "AUTOEMBED_API_TOKEN" } }
    }
  }
}
export type OpenApiDocument = ReturnType<typeof openApiDocument>
