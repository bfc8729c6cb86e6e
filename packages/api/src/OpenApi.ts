import {
  BackfillRequest,
  ExtractionRequest,
  IngestMessagesRequest,
  SearchQueryFields,
  SearchResponse
} from "@autoembed/core"
import { JSONSchema, Schema, SchemaAST } from "effect"
import * as S from "./Schemas.js"

type AnySchema = Schema.Schema.Any

interface ResponseSpec {
  readonly description: string
  readonly schema?: AnySchema
  /** Other than JSON (the metrics text, the HTML pages). */
  readonly contentType?: string
}

/** One route as the OpenAPI document describes it; `App` registers handlers for exactly these. */
export interface RouteSpec {
  readonly method: "get" | "post"
  /** OpenAPI path syntax (`{id}`); `honoPath` turns it into Hono's. */
  readonly path: string
  readonly operationId: string
  readonly summary: string
  readonly tag: string
  /** write: needs the token when one is set; read: only with AUTOEMBED_PROTECT_READS; none: never. */
  readonly auth: "write" | "read" | "none"
  readonly body?: { readonly schema: AnySchema; readonly required: boolean }
  readonly query?: Schema.Struct<any>
  readonly pathParams?: ReadonlyArray<{ readonly name: string; readonly description: string }>
  readonly responses: Readonly<Record<number, ResponseSpec>>
}

const err = (description: string): ResponseSpec => ({ description, schema: S.ErrorResponse })

/** Errors every JSON route can answer besides its own. */
const common = {
  500: err("A bug; the body carries the request id to look up in the server log"),
  503: err("The database or the embedding provider is unavailable; retry after the Retry-After seconds")
}
const bodyErrors = {
  400: err("The body is missing or is not valid JSON"),
  413: err("The body is larger than 1 MiB"),
  415: err("The body is not application/json"),
  422: err("The body does not match the schema, or names ids that do not exist (details say which)")
}
const auth401 = { 401: err("Missing or wrong bearer token (only when AUTOEMBED_API_TOKEN is set)") }

export const routes: ReadonlyArray<RouteSpec> = [
  {
    method: "post",
    path: "/v1/messages",
    operationId: "ingestMessages",
    tag: "ingest",
    auth: "write",
    summary:
      "Save chat messages; each is embedded in the background within seconds (an external_id seen before updates that message)",
    body: { schema: IngestMessagesRequest, required: true },
    responses: {
      201: { description: "Saved; the ids in request order", schema: S.IngestResponse },
      ...auth401,
      ...bodyErrors,
      409: err("A concurrent request wrote the same external_id; retry"),
      ...common
    }
  },
  {
    method: "post",
    path: "/v1/extractions",
    operationId: "persistExtraction",
    tag: "ingest",
    auth: "write",
    summary:
      "Persist an extraction (topics, knowledge atoms with links, processed message ids) in one transaction; atoms are embedded in the background",
    body: { schema: ExtractionRequest, required: true },
    responses: {
      201: { description: "Persisted", schema: S.ExtractionResponse },
      ...auth401,
      ...bodyErrors,
      409: err("A concurrent write changed the same rows; retry"),
      ...common
    }
  },
  {
    method: "get",
    path: "/v1/search",
    operationId: "search",
    tag: "search",
    auth: "read",
    summary: "Semantic (vector), full-text or hybrid search over every embedded source",
    query: SearchQueryFields,
    responses: {
      200: { description: "Results, best first, with scores and snippets", schema: SearchResponse },
      ...auth401,
      422: err("A parameter is out of bounds or names an unknown type"),
      429: err("The embedding provider is rate limiting query embeddings; retry after the Retry-After seconds"),
      ...common
    }
  },
  {
    method: "post",
    path: "/v1/embeddings/backfill",
    operationId: "backfill",
    tag: "embeddings",
    auth: "write",
    summary: "Embed every missing or stale row: with dry_run, count them; otherwise start a background job",
    body: { schema: BackfillRequest, required: false },
    responses: {
      200: { description: "Dry run: what a run would process", schema: S.DryRunResponse },
      202: { description: "Started; poll the Location header's URL for progress", schema: S.BackfillStarted },
      ...auth401,
      ...bodyErrors,
      409: err("A backfill started by this server is still running; details.job_id names it"),
      ...common
    }
  },
  {
    method: "get",
    path: "/v1/embeddings/backfill/{id}",
    operationId: "getBackfill",
    tag: "embeddings",
    auth: "read",
    summary: "Progress of a backfill job (from this process or, when another process ran it, from the database)",
    pathParams: [{ name: "id", description: "The job id from POST /v1/embeddings/backfill" }],
    responses: {
      200: { description: "The job", schema: S.BackfillJobSchema },
      ...auth401,
      404: err("No such job"),
      ...common
    }
  },
  {
    method: "get",
    path: "/v1/embeddings/status",
    operationId: "status",
    tag: "embeddings",
    auth: "read",
    summary: "Per-source totals (embedded, pending, stale, failed), queue, throughput, provider and recent errors",
    responses: { 200: { description: "The status report", schema: S.StatusResponse }, ...auth401, ...common }
  },
  {
    method: "post",
    path: "/v1/embeddings/retry-failed",
    operationId: "retryFailed",
    tag: "embeddings",
    auth: "write",
    summary: "Queue rows that failed permanently again (after fixing the cause)",
    body: { schema: S.RetryFailedRequest, required: false },
    responses: {
      200: { description: "How many rows were queued again", schema: S.RetryFailedResponse },
      ...auth401,
      ...bodyErrors,
      ...common
    }
  },
  {
    method: "get",
    path: "/healthz",
    operationId: "health",
    tag: "operations",
    auth: "none",
    summary: "The process is up (no dependency checked)",
    responses: { 200: { description: "Up", schema: S.HealthResponse } }
  },
  {
    method: "get",
    path: "/readyz",
    operationId: "ready",
    tag: "operations",
    auth: "none",
    summary: "The database answers and the embedding provider embeds (provider result cached for 30 s)",
    responses: {
      200: { description: "Ready", schema: S.ReadyResponse },
      503: err("Not ready; details has the database and provider checks")
    }
  },
  {
    method: "get",
    path: "/metrics",
    operationId: "metrics",
    tag: "operations",
    auth: "read",
    summary:
      "Prometheus metrics of this process: embeddings, queue, batch and search latency, provider errors, rows per state",
    responses: {
      200: { description: "Prometheus text exposition format 0.0.4", contentType: "text/plain; version=0.0.4" },
      ...auth401
    }
  },
  {
    method: "get",
    path: "/openapi.json",
    operationId: "openapi",
    tag: "operations",
    auth: "none",
    summary: "This document",
    responses: { 200: { description: "OpenAPI 3.1 document", contentType: "application/json" } }
  },
  {
    method: "get",
    path: "/docs",
    operationId: "docs",
    tag: "operations",
    auth: "none",
    summary: "The routes of this document as an HTML page",
    responses: { 200: { description: "HTML", contentType: "text/html" } }
  },
  {
    method: "get",
    path: "/",
    operationId: "page",
    tag: "operations",
    auth: "none",
    summary: "Web page: search, pipeline status, backfill",
    responses: { 200: { description: "HTML", contentType: "text/html" } }
  },
  {
    method: "get",
    path: "/static/{name}",
    operationId: "asset",
    tag: "operations",
    auth: "none",
    summary: "The web page's script and style sheet",
    pathParams: [{ name: "name", description: "app.js or style.css" }],
    responses: { 200: { description: "The file", contentType: "text/javascript" }, 404: err("No such file") }
  }
]

/** The fields of a query schema as the client sends them (a Struct with defaults is a transformation from one). */
const queryFields = (ast: SchemaAST.AST): ReadonlyArray<SchemaAST.PropertySignature> => {
  let node = ast
  while (node._tag === "Transformation" || node._tag === "Refinement") node = node.from
  return node._tag === "TypeLiteral" ? node.propertySignatures : []
}

/** An optional field's type is `T | undefined`; a query parameter is simply absent instead. */
const withoutUndefined = (ast: SchemaAST.AST): SchemaAST.AST => {
  if (ast._tag !== "Union") return ast
  const types = ast.types.filter((t) => t._tag !== "UndefinedKeyword")
  return types.length === 1 ? types[0] : SchemaAST.Union.make(types)
}

export const honoPath = (path: string) => path.replace(/\{(\w+)\}/g, ":$1")

const listRoutes = (auth: RouteSpec["auth"]) =>
  routes.filter((r) => r.auth === auth).map((r) => `${r.method.toUpperCase()} ${r.path}`).join(", ")

/** Which routes need the token, in words (test/api.test.ts checks that every route answers as its entry says). */
const authDescription = () =>
  `With AUTOEMBED_API_TOKEN set, write routes always need "Authorization: Bearer <token>": ${listRoutes("write")}. ` +
  `Read routes need it only with AUTOEMBED_PROTECT_READS=true: ${listRoutes("read")}. ` +
  `Open routes never need it: ${listRoutes("none")}. Each operation's x-autoembed-auth says which kind it is.`

/** OpenAPI 3.1 document built from the same Effect Schemas that decode the requests. */
export const openApiDocument = (options: { readonly version: string; readonly serverUrl?: string }) => {
  const definitions: Record<string, any> = {}
  const toJson = (schema: AnySchema) =>
    JSONSchema.fromAST(schema.ast, { definitions, definitionPath: "#/components/schemas/", target: "openApi3.1" })

  const paths: Record<string, Record<string, unknown>> = {}
  for (const r of routes) {
    const parameters: Array<unknown> = []
    for (const p of r.pathParams ?? []) {
      parameters.push({
        name: p.name,
        in: "path",
        required: true,
        description: p.description,
        schema: { type: "string", maxLength: 64 }
      })
    }
    if (r.query) {
      for (const ps of queryFields(r.query.ast)) {
        const name = String(ps.name)
        if (name === "filter") {
          // Sent as one parameter per filter: filter.chat_id=42, filter.sent_at.gte=2024-05-01.
          parameters.push({
            name: "filter.{column}[.gte|.gt|.lte|.lt]",
            in: "query",
            required: false,
            description:
              "Equality (or, for numbers and dates, a range bound) on a column the source declares in `filters`",
            schema: { type: "string", maxLength: 200 }
          })
          continue
        }
        parameters.push({
          name,
          in: "query",
          required: !ps.isOptional,
          schema: toJson(Schema.make(withoutUndefined(ps.type))),
          ...(SchemaAST.getDescriptionAnnotation(ps).pipe((o) => (o._tag === "Some" ? { description: o.value } : {})))
        })
      }
    }
    const responses: Record<string, unknown> = {}
    for (const [status, spec] of Object.entries(r.responses)) {
      const type = spec.contentType ?? "application/json"
      responses[status] = {
        description: spec.description,
        content: { [type]: spec.schema ? { schema: toJson(spec.schema) } : {} }
      }
    }
    const operation: Record<string, unknown> = {
      operationId: r.operationId,
      summary: r.summary,
      tags: [r.tag],
      responses,
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(r.body
        ? {
          requestBody: { required: r.body.required, content: { "application/json": { schema: toJson(r.body.schema) } } }
        }
        : {}),
      ...(r.auth === "write"
        ? { security: [{ bearer: [] }] }
        : r.auth === "read"
        ? { security: [{ bearer: [] }, {}] }
        : {}),
      "x-autoembed-auth": r.auth
    }
    paths[r.path] = { ...(paths[r.path] ?? {}), [r.method]: operation }
  }

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
      { name: "operations", description: "Health, readiness, metrics, documentation" }
    ],
    paths,
    components: {
      schemas: definitions,
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "AUTOEMBED_API_TOKEN" } }
    }
  }
}
