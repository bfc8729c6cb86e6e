/**
 * The HTTP contract of autoembed: operations, schemas, the OpenAPI document and a typed client.
 * Imports no server code, so a TypeScript service can use the client without Hono.
 */
export * from "./Api.js"
export { ApiClientError, type Client, type ClientOptions, makeClient } from "./Client.js"
export type { Answer, EndpointSpec, Input, Received, Request, Success } from "./Endpoint.js"
export { type OpenApiDocument, openApiDocument } from "./OpenApi.js"
export * from "./Schemas.js"
export { decodeSearchQuery, SearchQueryForm } from "./SearchQuery.js"
