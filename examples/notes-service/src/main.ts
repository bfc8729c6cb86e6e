import { startNotesService } from "./NotesService.js"

// `pnpm --filter @autoembed/example-notes-service start`: DATABASE_URL selects PostgreSQL (else the
// embedded database in NOTES_DATA_DIR); EMBEDDING_PROVIDER, EMBEDDING_MODEL, OLLAMA_HOST, ... are
// read by autoembed itself because env is true.
const service = await startNotesService({
  databaseUrl: process.env.DATABASE_URL || undefined,
  dataDir: process.env.NOTES_DATA_DIR || undefined,
  port: Number(process.env.PORT ?? 3100),
  autoembed: { env: true }
}).catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`)
  process.exit(2)
})

process.stdout.write(`notes service on ${service.url}: POST /notes, PATCH /notes/:id, GET /search?q=..., GET /status\n`)
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    service.close().then(() => process.exit(0), () => process.exit(1))
  })
}
