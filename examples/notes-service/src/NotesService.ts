import {
  type AutoEmbedClient,
  createAutoEmbed,
  type CreateAutoEmbedOptions,
  type SourceConfigInput
} from "@autoembed/core"
import { PGlite } from "@electric-sql/pglite"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import pg from "pg"

/**
 * A small notes service that owns its table and lets autoembed keep the table's embeddings
 * current. Its routes: POST /notes {title, body}, PATCH /notes/:id {body}, GET /search?q=..., GET /status.
 */

/**
 * The service's own schema. autoembed adds only triggers to it at start-up; the vectors live in
 * autoembed's own schema (the table has no vector column), so the table stays exactly as written.
 */
const NOTES_DDL = `
  CREATE TABLE IF NOT EXISTS notes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title text NOT NULL,
    body text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
  )`

/**
 * The notes table as an autoembed source, in the configuration file's shape: what text to embed and what
 * search shows.
 */
export const notesSource: SourceConfigInput = {
  table: "notes",
  text: "{title}\n\n{body}",
  title: "title",
  content: "body",
  created_at: "created_at"
}

export interface NotesServiceOptions {
  /** The service's PostgreSQL database; without it, an embedded PGlite database in `dataDir`. */
  readonly databaseUrl?: string
  /** Embedded database directory (default .data/notes-service). */
  readonly dataDir?: string
  readonly host?: string
  /** 0 picks a free port. */
  readonly port?: number
  /** Provider settings and anything else autoembed takes (model, dimensions, ollamaHost, ...). */
  readonly autoembed?: Omit<CreateAutoEmbedOptions, "databaseUrl" | "dataDir" | "sources" | "builtinSources">
}

export interface NotesService {
  readonly url: string
  readonly autoembed: AutoEmbedClient
  readonly close: () => Promise<void>
}

/**
 * The table must exist before autoembed registers it; the embedded database is opened only for this and
 * closed again.
 */
const createSchema = async (options: NotesServiceOptions, dataDir: string): Promise<void> => {
  if (options.databaseUrl) {
    const client = new pg.Client({ connectionString: options.databaseUrl })
    await client.connect()
    try {
      await client.query(NOTES_DDL)
    } finally {
      await client.end()
    }
    return
  }
  const db = await PGlite.create(dataDir)
  try {
    await db.exec(NOTES_DDL)
  } finally {
    await db.close()
  }
}

const readJson = async (req: IncomingMessage): Promise<Record<string, unknown>> => {
  let body = ""
  for await (const chunk of req) body += chunk
  const value: unknown = body === "" ? {} : JSON.parse(body)
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error("body must be a JSON object")
  return value as Record<string, unknown>
}

const send = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { "content-type": "application/json" })
  res.end(JSON.stringify(body))
}

export const startNotesService = async (options: NotesServiceOptions = {}): Promise<NotesService> => {
  const dataDir = options.dataDir ?? ".data/notes-service"
  await createSchema(options, dataDir)
  const autoembed = await createAutoEmbed({
    ...options.autoembed,
    ...(options.databaseUrl ? { databaseUrl: options.databaseUrl } : { dataDir }),
    builtinSources: false,
    sources: { notes: notesSource }
  })

  const routes = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://notes")
    const patch = /^\/notes\/(\d+)$/.exec(url.pathname)
    if (req.method === "POST" && url.pathname === "/notes") {
      const { title, body } = await readJson(req)
      if (typeof title !== "string" || typeof body !== "string" || title.trim() === "" || body.trim() === "") {
        return send(res, 400, { error: "title and body must be non-empty strings" })
      }
      // The insert trigger has queued the row in this same statement; enqueue only wakes the workers now.
      const [row] = await autoembed.query<{ id: number }>(
        "INSERT INTO notes (title, body) VALUES ($1, $2) RETURNING id",
        [title, body]
      )
      await autoembed.enqueue("notes", [row.id])
      return send(res, 201, { id: Number(row.id) })
    }
    if (req.method === "PATCH" && patch) {
      const { body } = await readJson(req)
      if (typeof body !== "string" || body.trim() === "") {
        return send(res, 400, { error: "body must be a non-empty string" })
      }
      const rows = await autoembed.query("UPDATE notes SET body = $1 WHERE id = $2 RETURNING id", [body, patch[1]])
      if (rows.length === 0) return send(res, 404, { error: `no note ${patch[1]}` })
      await autoembed.enqueue("notes", [patch[1]])
      return send(res, 200, { id: Number(patch[1]) })
    }
    if (req.method === "GET" && url.pathname === "/search") {
      const q = url.searchParams.get("q") ?? ""
      const mode = (url.searchParams.get("mode") ?? "hybrid") as "vector" | "hybrid" | "text"
      return send(
        res,
        200,
        await autoembed.search({ q, mode, types: ["notes"], limit: Number(url.searchParams.get("limit") ?? 5) })
      )
    }
    if (req.method === "GET" && url.pathname === "/status") {
      const status = await autoembed.status()
      return send(res, 200, { notes: status.sources.notes, model: status.provider.modelKey })
    }
    return send(res, 404, { error: "not found" })
  }

  const server = createServer((req, res) => {
    routes(req, res).catch((error: unknown) => {
      // autoembed rejects with one-line messages (a bad query, say): a 400 with that message.
      const message = error instanceof Error ? error.message : String(error)
      if (!res.headersSent) {
        send(
          res,
          error instanceof SyntaxError || /InvalidRequest|SearchInvalid/.test(String((error as { tag?: string }).tag))
            ? 400
            : 500,
          { error: message }
        )
      }
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(options.port ?? 3100, options.host ?? "127.0.0.1", () => resolve())
  })
  const { address, port } = server.address() as AddressInfo
  return {
    url: `http://${address.includes(":") ? `[${address}]` : address}:${port}`,
    autoembed,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await autoembed.close()
    }
  }
}
