import { Validator } from "@seriousme/openapi-schema-validator"
import { Option } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeApp } from "../packages/api/src/App.js"
import { startTestServer, type TestServer } from "./support/ApiServer.js"

/** The routes issue 7 asks for, as OpenAPI paths. */
const REQUIRED = [
  "post /v1/messages",
  "post /v1/extractions",
  "get /v1/search",
  "post /v1/embeddings/backfill",
  "get /v1/embeddings/backfill/{id}",
  "get /v1/embeddings/status",
  "post /v1/embeddings/retry-failed",
  "get /healthz",
  "get /readyz",
  "get /metrics",
  "get /openapi.json",
  "get /docs",
  "get /"
]

/** The embedding-set routes of issue 18, and which of them change state (token required). */
const SET_ROUTES = {
  "get /v1/sets": "read",
  "get /v1/sets/{source}/{set}": "read",
  "post /v1/sets": "write",
  "post /v1/sets/{source}/{set}/activate": "write",
  "post /v1/sources/{source}/rollback": "write",
  "delete /v1/sets/{source}/{set}": "write"
} as const

describe("/openapi.json", () => {
  let server: TestServer
  let doc: any
  beforeAll(async () => {
    server = await startTestServer({ workers: false })
    const res = await fetch(`${server.url}/openapi.json`)
    expect(res.status).toBe(200)
    doc = await res.json()
  })
  afterAll(async () => {
    await server?.stop()
  })

  it("validates as OpenAPI 3.x", async () => {
    expect(doc.openapi).toMatch(/^3\.1\./)
    const result = await new Validator().validate(doc)
    expect(result.errors ?? [], JSON.stringify(result.errors, null, 1)?.slice(0, 2000)).toEqual([])
    expect(result.valid).toBe(true)
  })

  it("documents every registered route, and every route the issue asks for", () => {
    const documented = new Set(
      Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops as object).map((m) => `${m} ${path}`))
    )
    for (const r of [...REQUIRED, ...Object.keys(SET_ROUTES)]) expect(documented, r).toContain(r)
    const app = makeApp({
      runtime: server.runtime,
      auth: { apiToken: Option.none(), protectReads: false },
      version: "test",
      mode: "api"
    })
    const registered = app.routes
      .filter((r) => r.method !== "ALL")
      .map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:(\w+)/g, "{$1}")}`)
    expect(new Set(registered)).toEqual(documented)
  })

  it("describes request bodies and query parameters with the schemas that validate them", () => {
    const messages = doc.paths["/v1/messages"].post.requestBody.content["application/json"].schema
    expect(messages.properties.messages).toMatchObject({ type: "array", minItems: 1, maxItems: 1000 })
    const limit = doc.paths["/v1/search"].get.parameters.find((p: any) => p.name === "limit")
    expect(limit).toMatchObject({ in: "query", required: false })
    const q = doc.paths["/v1/search"].get.parameters.find((p: any) => p.name === "q")
    expect(q).toMatchObject({ in: "query", required: true })
    expect(doc.paths["/v1/embeddings/backfill"].post.responses).toHaveProperty("202")
    expect(doc.paths["/v1/messages"].post.security).toEqual([{ bearer: [] }])
    expect(doc.components.schemas.Error.properties.error.required).toEqual(["code", "message", "details", "request_id"])
  })

  it("documents the set routes: mutating ones need the token, set names may be 200 characters", () => {
    for (const [route, auth] of Object.entries(SET_ROUTES)) {
      const [method, path] = route.split(" ")
      const op = doc.paths[path][method]
      expect(op["x-autoembed-auth"], route).toBe(auth)
      expect(op.security, route).toEqual(auth === "write" ? [{ bearer: [] }] : [{ bearer: [] }, {}])
      expect(op.responses, route).toHaveProperty("404")
    }
    const set = doc.paths["/v1/sets/{source}/{set}"].delete.parameters.find((p: any) => p.name === "set")
    expect(set).toMatchObject({ in: "path", required: true, schema: { type: "string", maxLength: 200 } })
    const add = doc.paths["/v1/sets"].post.requestBody.content["application/json"].schema
    expect(Object.keys(add.properties).sort()).toEqual(
      ["base_url", "dimensions", "model", "name", "provider", "source", "vector"]
    )
    expect(doc.paths["/v1/search"].get.parameters.map((p: any) => p.name)).toContain("set")
    expect(doc.components.schemas.StatusReport.properties.sets.items).toEqual({
      $ref: "#/components/schemas/SetReport"
    })
  })

  it("serves a docs page that lists the routes, with no external resource", async () => {
    const res = await fetch(`${server.url}/docs`)
    expect(res.status).toBe(200)
    expect(res.headers.get("content-type")).toMatch(/^text\/html/)
    const html = await res.text()
    for (const r of [...REQUIRED, ...Object.keys(SET_ROUTES)]) {
      const [method, path] = r.split(" ")
      expect(html).toContain(`${method.toUpperCase()} ${path}`)
    }
    // A body schema that is a named component is listed by its fields too.
    expect(html).toContain("fields: <code>force</code>")
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//)
  })
})
