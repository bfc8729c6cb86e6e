import { readdirSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { Api } from "../contract/Api.js"
import { type OpenApiDocument, openApiDocument } from "../contract/OpenApi.js"
import { ApiError } from "../Errors.js"
import type { Handlers } from "../Serve.js"

/** packages/api/static, from src/routes and from dist/routes alike. */
const STATIC_DIR = fileURLToPath(new URL("../../static/", import.meta.url))

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml"
}

/** Same-origin only, nothing inline: the page works offline and an injected string cannot run. */
export const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

const html = (s: string) => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`)

/** A schema of the document, following a `$ref` to its component (named request bodies). */
const resolve = (doc: OpenApiDocument, schema: any): any =>
  typeof schema?.$ref === "string"
    ? (doc.components.schemas as Record<string, unknown>)[schema.$ref.replace("#/components/schemas/", "")]
    : schema

/** The docs page: every operation of the OpenAPI document with its parameters and answers. */
const docsPage = (doc: OpenApiDocument) => {
  const sections = Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops).map(([method, op]: [string, any]) => {
      const params = (op.parameters ?? []).map((p: any) =>
        `<li><code>${html(p.name)}</code> (${p.in}${p.required ? ", required" : ""})${
          p.schema?.description ? ` ${html(p.schema.description)}` : ""
        }${p.description ? ` ${html(p.description)}` : ""}</li>`
      ).join("")
      const body = op.requestBody
        ? `<p>Body: JSON, ${op.requestBody.required ? "required" : "optional"}; fields: ${
          Object.keys(resolve(doc, op.requestBody.content["application/json"].schema).properties ?? {}).map((k) =>
            `<code>${html(k)}</code>`
          ).join(", ")
        }</p>`
        : ""
      const answers = Object.entries(op.responses).map(([status, r]: [string, any]) =>
        `<li><strong>${status}</strong> ${html(r.description)}</li>`
      ).join("")
      const auth = op.security
        ? (op.security.length > 1
          ? "token only with AUTOEMBED_PROTECT_READS"
          : "needs the bearer token when AUTOEMBED_API_TOKEN is set")
        : "open"
      return `<section class="op" id="${
        html(op.operationId)
      }"><h2><span class="method ${method}">${method.toUpperCase()}</span> <code>${html(path)}</code></h2>
<p>${html(op.summary)} <em>(${auth})</em></p>${
        params ? `<p>Parameters:</p><ul>${params}</ul>` : ""
      }${body}<p>Answers:</p><ul>${answers}</ul></section>`
    })
  )
  const nav = Object.values(Api).map((e) => `<li><a href="#${e.id}">${e.method.toUpperCase()} ${html(e.path)}</a></li>`)
    .join("")
  return `<!doctype html><html lang="en"><head><meta charset="utf-8">` +
    `<meta name="viewport" content="width=device-width, initial-scale=1">\n` +
    `<title>autoembed API</title><link rel="icon" href="/static/favicon.svg" type="image/svg+xml">` +
    `<link rel="stylesheet" href="/static/style.css"></head><body><main class="docs">\n` +
    `<h1>autoembed API <small>${html(doc.info.version)}</small></h1><p>${html(doc.info.description)}</p>\n` +
    `<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI ${doc.openapi}). ` +
    `Web page: <a href="/">/</a>.</p>\n` +
    `<nav aria-label="Routes"><ul>${nav}</ul></nav>\n` +
    `${sections.join("\n")}</main></body></html>`
}

/** GET /, /static/*, /docs and /openapi.json. */
export const pageHandlers = (version: string): Pick<Handlers, "page" | "asset" | "docs" | "openapi"> => {
  // Read once at start-up: a fixed set of files, so no request path ever reaches the file system.
  const files = new Map<string, { body: string; type: string }>()
  for (const name of readdirSync(STATIC_DIR)) {
    const ext = name.slice(name.lastIndexOf("."))
    if (TYPES[ext]) files.set(name, { body: readFileSync(STATIC_DIR + name, "utf8"), type: TYPES[ext] })
  }
  const doc = JSON.stringify(openApiDocument({ version }))
  const docsHtml = docsPage(JSON.parse(doc))
  const headers = (type: string) => ({
    "content-type": type,
    "cache-control": "no-cache",
    "content-security-policy": PAGE_CSP
  })

  return {
    page: async () => ({ status: 200, body: files.get("index.html")!.body, headers: headers(TYPES[".html"]) }),
    asset: async ({ params }) => {
      const file = files.get(params.name)
      if (!file) throw new ApiError({ status: 404, code: "not_found", message: "No such file" })
      return { status: 200, body: file.body, headers: headers(file.type) }
    },
    openapi: async () => ({ status: 200, body: doc }),
    docs: async () => ({ status: 200, body: docsHtml, headers: headers(TYPES[".html"]) })
  }
}
