import { SetSourceName } from "@autoembed/core"
import { Schema } from "effect"
import { endpoint } from "./Endpoint.js"
import * as S from "./Schemas.js"
import { SearchQueryForm } from "./SearchQuery.js"

/**
 * The HTTP API: every operation, its input, its answers. The server implements exactly these
 * (App.ts's handler table is typed by them), /openapi.json and /docs are generated from them, and
 * `makeClient` calls them.
 */

/** Errors every JSON operation can answer besides its own. */
const common = {
  500: "A bug; the body carries the request id to look up in the server log",
  503: "The database or the embedding provider is unavailable; retry after the Retry-After seconds"
}
const bodyErrors = {
  400: "The body is missing or is not valid JSON",
  413: "The body is larger than 1 MiB",
  415: "The body is not application/json",
  422: "The body does not match the schema, or names ids that do not exist (details say which)"
}
const unauthorized = { 401: "Missing or wrong bearer token (only when AUTOEMBED_API_TOKEN is set)" }

/**
 * Core's message schema turns any string into a Date, "last tuesday" included (an Invalid Date that
 * would only fail in SQL); the API refuses those up front with a 422 that names the field.
 */
const IngestRequest = S.IngestMessagesBody.pipe(
  Schema.filter((r) =>
    r.messages.every((m) => m.sentAt == null || !Number.isNaN(m.sentAt.getTime())) ||
    "sent_at must be a date such as 2025-03-01 or 2025-03-01T10:00:00Z"
  )
)

export const ingestMessages = endpoint({
  id: "ingestMessages",
  method: "post",
  path: "/v1/messages",
  tag: "ingest",
  auth: "write",
  summary: "Save chat messages; each is embedded in the background within seconds " +
    "(an external_id seen before updates that message)",
  body: { schema: IngestRequest, required: true },
  success: { 201: { description: "Saved; the ids in request order", schema: S.IngestResponse } },
  errors: { ...unauthorized, ...bodyErrors, 409: "A concurrent request wrote the same external_id; retry", ...common }
})

export const persistExtraction = endpoint({
  id: "persistExtraction",
  method: "post",
  path: "/v1/extractions",
  tag: "ingest",
  auth: "write",
  summary: "Persist an extraction (topics, knowledge atoms with links, processed message ids) in one " +
    "transaction; atoms are embedded in the background",
  body: { schema: S.ExtractionRequestBody, required: true },
  success: { 201: { description: "Persisted", schema: S.ExtractionResponse } },
  errors: { ...unauthorized, ...bodyErrors, 409: "A concurrent write changed the same rows; retry", ...common }
})

export const search = endpoint({
  id: "search",
  method: "get",
  path: "/v1/search",
  tag: "search",
  auth: "read",
  summary: "Semantic (vector), full-text or hybrid search over every embedded source",
  query: { form: SearchQueryForm, request: S.SearchRequestBody },
  success: { 200: { description: "Results, best first, with scores and snippets", schema: S.SearchResponseBody } },
  errors: {
    ...unauthorized,
    404: "`set` names no embedding set of a searched type (set_not_found; the message lists the sets there are)",
    422: "A parameter is out of bounds or names an unknown type",
    429: "The embedding provider is rate limiting query embeddings; retry after the Retry-After seconds",
    ...common
  }
})

export const backfill = endpoint({
  id: "backfill",
  method: "post",
  path: "/v1/embeddings/backfill",
  tag: "embeddings",
  auth: "write",
  summary: "Embed every missing or stale row: with dry_run, count them; otherwise start a background job",
  body: { schema: S.BackfillRequestBody, required: false },
  success: {
    200: { description: "Dry run: what a run would process", schema: S.DryRunResponse },
    202: { description: "Started; poll the Location header's URL for progress", schema: S.BackfillStarted }
  },
  errors: {
    ...unauthorized,
    ...bodyErrors,
    409: "A backfill started by this server is still running; details.job_id names it",
    ...common
  }
})

export const getBackfill = endpoint({
  id: "getBackfill",
  method: "get",
  path: "/v1/embeddings/backfill/{id}",
  tag: "embeddings",
  auth: "read",
  summary: "Progress of a backfill job (from this process or, when another process ran it, from the database)",
  params: [{ name: "id", description: "The job id from POST /v1/embeddings/backfill" }],
  success: { 200: { description: "The job", schema: S.BackfillJobSchema } },
  errors: { ...unauthorized, 404: "No such job", ...common }
})

export const status = endpoint({
  id: "status",
  method: "get",
  path: "/v1/embeddings/status",
  tag: "embeddings",
  auth: "read",
  summary: "Per-source totals (embedded, pending, stale, failed), queue, throughput, provider and recent errors",
  success: { 200: { description: "The status report", schema: S.StatusResponse } },
  errors: { ...unauthorized, ...common }
})

export const retryFailed = endpoint({
  id: "retryFailed",
  method: "post",
  path: "/v1/embeddings/retry-failed",
  tag: "embeddings",
  auth: "write",
  summary: "Queue rows that failed permanently again (after fixing the cause)",
  body: { schema: S.RetryFailedRequest, required: false },
  success: { 200: { description: "How many rows were queued again", schema: S.RetryFailedResponse } },
  errors: { ...unauthorized, ...bodyErrors, ...common }
})

/** Path parameters of one set: source names are identifiers, set names run longer (`messages@mxbai-embed-large`). */
const setParams = [
  { name: "source", description: "The source (entity type), e.g. messages", maxLength: 63 },
  {
    name: "set",
    description: "The set's name, e.g. messages@text-embedding-3-small (percent-encode @ and :, or not)",
    maxLength: 200
  }
] as const
const setNotFound = { 404: "No such source, or the source has no set of that name (set_not_found)" }

export const listSets = endpoint({
  id: "listSets",
  method: "get",
  path: "/v1/sets",
  tag: "sets",
  auth: "read",
  summary: "Every embedding set (of one source with ?source=): model, dimensions, phase, counts, index, sizes",
  query: {
    form: Schema.Struct({
      source: Schema.optional(Schema.String.annotations({ description: "Only this source's sets" }))
    }),
    request: Schema.Struct({ source: Schema.optional(SetSourceName) })
  },
  success: { 200: { description: "The sets, each source's oldest first", schema: S.SetsResponse } },
  errors: { ...unauthorized, ...setNotFound, 422: "source is empty or too long", ...common }
})

export const getSet = endpoint({
  id: "getSet",
  method: "get",
  path: "/v1/sets/{source}/{set}",
  tag: "sets",
  auth: "read",
  summary: "One embedding set: its phase (active, building, ready), counts and progress, index and size",
  params: setParams,
  success: { 200: { description: "The set", schema: S.SetReportBody } },
  errors: { ...unauthorized, ...setNotFound, ...common }
})

export const addSet = endpoint({
  id: "addSet",
  method: "post",
  path: "/v1/sets",
  tag: "sets",
  auth: "write",
  summary: "Add an embedding set beside a source's active one (another provider, model or dimensions): the " +
    "provider is probed, every row is queued for the set, and the running workers fill it while the active set " +
    "keeps serving search",
  body: { schema: S.AddSetRequestBody, required: true },
  success: {
    201: { description: "Added; its phase is building until every row has a vector", schema: S.SetReportBody }
  },
  errors: {
    ...unauthorized,
    ...bodyErrors,
    400: "The body is missing or is not valid JSON; or the provider cannot embed with that model and dimensions, " +
      "or the vector column does not fit (set_invalid)",
    404: "No such source (set_not_found)",
    409: "The source already has a set of that name (set_conflict)",
    ...common
  }
})

export const activateSet = endpoint({
  id: "activateSet",
  method: "post",
  path: "/v1/sets/{source}/{set}/activate",
  tag: "sets",
  auth: "write",
  summary: "Make a set the one search reads, in one transaction; the set active before stays live as the " +
    "rollback target. Refused while the set is incomplete unless force",
  params: setParams,
  body: { schema: S.ActivateSetRequest, required: false },
  success: { 200: { description: "The set, now active", schema: S.SetReportBody } },
  errors: {
    ...unauthorized,
    ...bodyErrors,
    ...setNotFound,
    409: "The set is incomplete (the message says how many rows are missing); send {\"force\": true} to activate " +
      "it anyway (set_conflict)",
    ...common
  }
})

export const rollbackSet = endpoint({
  id: "rollbackSet",
  method: "post",
  path: "/v1/sources/{source}/rollback",
  tag: "sets",
  auth: "write",
  summary: "Re-activate the set that was active before the last activation of the source's sets, at once",
  params: [setParams[0]],
  success: { 200: { description: "The set, active again", schema: S.SetReportBody } },
  errors: {
    ...unauthorized,
    404: "No such source (set_not_found)",
    409: "The source has no previous set (set_conflict)",
    ...common
  }
})

export const dropSet = endpoint({
  id: "dropSet",
  method: "delete",
  path: "/v1/sets/{source}/{set}",
  tag: "sets",
  auth: "write",
  summary: "Remove a retired set: its HNSW index, triggers, bookkeeping and its vectors in autoembed's schema " +
    "(a set kept in a vector column of your table leaves that column's values to you; the source's rows stay)",
  params: setParams,
  success: { 200: { description: "Dropped", schema: S.DropSetResponse } },
  errors: {
    ...unauthorized,
    ...setNotFound,
    409: "The set is active, or is the one the configuration declares (set_conflict)",
    ...common
  }
})

export const compareSets = endpoint({
  id: "compareSets",
  method: "post",
  path: "/v1/sets/compare",
  tag: "sets",
  // It reads, but embeds every query with both sets' providers (up to 10,000 given queries): a call
  // that spends the providers' budget takes the token like a write.
  auth: "write",
  summary: "Run the same vector searches on two sets of a source (a sample of its rows' texts, or the given " +
    "queries) and compare them: top-10 overlap, latency, rows, storage and index size, and with relevance " +
    "judgements nDCG@10 and recall@10",
  body: { schema: S.CompareRequestBody, required: true },
  success: { 200: { description: "The comparison", schema: S.CompareReportBody } },
  errors: {
    ...unauthorized,
    ...bodyErrors,
    400: "The body is missing or is not valid JSON, or a set cannot be searched here (set_invalid)",
    404: "No such source, or the source has no set of that name (set_not_found)",
    429: "An embedding provider is rate limiting the queries' embeddings; retry after the Retry-After seconds",
    ...common
  }
})

export const health = endpoint({
  id: "health",
  method: "get",
  path: "/healthz",
  tag: "operations",
  auth: "none",
  summary: "The process is up (no dependency checked)",
  success: { 200: { description: "Up", schema: S.HealthResponse } },
  errors: {}
})

export const ready = endpoint({
  id: "ready",
  method: "get",
  path: "/readyz",
  tag: "operations",
  auth: "none",
  summary: "The database answers and the embedding provider embeds (provider result cached for 30 s)",
  success: { 200: { description: "Ready", schema: S.ReadyResponse } },
  errors: { 503: "Not ready; details has the database and provider checks" }
})

export const metrics = endpoint({
  id: "metrics",
  method: "get",
  path: "/metrics",
  tag: "operations",
  auth: "read",
  summary: "Prometheus metrics of this process: embeddings, queue, batch and search latency, provider errors, " +
    "rows per state",
  success: {
    200: { description: "Prometheus text exposition format 0.0.4", contentType: "text/plain; version=0.0.4" }
  },
  errors: { ...unauthorized }
})

export const openapi = endpoint({
  id: "openapi",
  method: "get",
  path: "/openapi.json",
  tag: "operations",
  auth: "none",
  summary: "This document",
  success: { 200: { description: "OpenAPI 3.1 document", contentType: "application/json" } },
  errors: {}
})

export const docs = endpoint({
  id: "docs",
  method: "get",
  path: "/docs",
  tag: "operations",
  auth: "none",
  summary: "The routes of this document as an HTML page",
  success: { 200: { description: "HTML", contentType: "text/html" } },
  errors: {}
})

export const page = endpoint({
  id: "page",
  method: "get",
  path: "/",
  tag: "operations",
  auth: "none",
  summary: "Web page: search, pipeline status, backfill",
  success: { 200: { description: "HTML", contentType: "text/html" } },
  errors: {}
})

export const asset = endpoint({
  id: "asset",
  method: "get",
  path: "/static/{name}",
  tag: "operations",
  auth: "none",
  summary: "The web page's script and style sheet",
  params: [{ name: "name", description: "app.js or style.css" }],
  success: { 200: { description: "The file", contentType: "text/javascript" } },
  errors: { 404: "No such file" }
})

/** Every operation, in the order the documentation lists them. */
export const Api = {
  ingestMessages,
  persistExtraction,
  search,
  backfill,
  getBackfill,
  status,
  retryFailed,
  listSets,
  getSet,
  addSet,
  activateSet,
  rollbackSet,
  dropSet,
  compareSets,
  health,
  ready,
  metrics,
  openapi,
  docs,
  page,
  asset
} as const
export type Api = typeof Api

/** The operations a worker process's health port serves. */
export const WORKER_OPERATIONS: ReadonlyArray<keyof Api> = ["health", "ready", "metrics"]
