/**
 * One local HTTP server that speaks Ollama's (`POST /api/embed`, `GET /api/version`, `GET /api/tags`)
 * and OpenAI's (`POST /v1/embeddings`) wire protocols, with the real error body shapes, so the
 * official clients can be tested against it. Vectors come from the Local provider, so search over
 * them is meaningful. Faults are switched at runtime through `behaviour`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { AddressInfo, Socket } from "node:net"
import { estimateTokens } from "../../packages/core/src/providers/EmbeddingProvider.js"
import { embedLocal } from "../../packages/core/src/providers/LocalProvider.js"

export interface FakeBehaviour {
  /** Added to every request. */
  latencyMs: number
  /** Added per input; with `serial`, inputs of all requests are processed one at a time (like Ollama). */
  perInputLatencyMs: number
  /** One request at a time, others queue (Ollama-like). */
  serial: boolean
  /** Probability (0..1) that a request fails with `failureStatus`, drawn from an RNG seeded by `seed`. */
  failureRate: number
  failureStatus: 500 | 429
  seed: number
  /** The next N embedding requests fail with `failNextStatus`. */
  failNext: number
  failNextStatus: number
  /** Retry-After (seconds) sent with every 429. */
  retryAfterSeconds: number
  /** Replaces the 429 rate-limit headers (e.g. an HTTP-date Retry-After, or x-ratelimit-reset-*). */
  rateLimitHeaders: Record<string, string> | undefined
  /** Never answer embedding requests (until close). */
  hang: boolean
  /** Answer with vectors of this length instead of the requested/native one. */
  wrongDimension: number | undefined
  /** Answer with one vector fewer than inputs (one more for a single input). */
  wrongCount: boolean
  /** Answer 200 with a truncated JSON body. */
  malformedJson: boolean
  /** Put NaN (null in JSON) into the first vector. */
  nonFinite: boolean
  /** OpenAI: answer base64 floats whatever encoding_format asked for. */
  base64: boolean
  /** OpenAI: answer in reverse `index` order (clients must sort). */
  shuffle: boolean
  /** Any input containing this string makes the whole request a 400 (like an over-long input at OpenAI). */
  poisonMarker: string | undefined
  /** Models the server has; undefined = any model. Others get 404 (Ollama "not found", OpenAI model_not_found). */
  models: ReadonlyArray<string> | undefined
  /** Bearer token required on every request (401 otherwise); undefined = none needed. */
  apiKey: string | undefined
  /** Vector length by model when the request does not ask for one. */
  modelDimensions: Record<string, number>
  /** Vector length of models not in `modelDimensions`. */
  defaultDimensions: number
  /** Reported usage is autoembed's count times this (a tokenizer that counts otherwise). */
  usageScale: number
}

export const defaultBehaviour = (): FakeBehaviour => ({
  latencyMs: 0,
  perInputLatencyMs: 0,
  serial: false,
  failureRate: 0,
  failureStatus: 500,
  seed: 42,
  failNext: 0,
  failNextStatus: 500,
  retryAfterSeconds: 1,
  rateLimitHeaders: undefined,
  hang: false,
  wrongDimension: undefined,
  wrongCount: false,
  malformedJson: false,
  nonFinite: false,
  base64: false,
  shuffle: false,
  poisonMarker: undefined,
  models: undefined,
  apiKey: undefined,
  modelDimensions: {
    "mxbai-embed-large": 1024,
    "nomic-embed-text": 768,
    "all-minilm": 384,
    "bge-m3": 1024,
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536
  },
  defaultDimensions: 1024,
  usageScale: 1
})

export interface RecordedRequest {
  readonly method: string
  readonly path: string
  readonly protocol: "ollama" | "openai" | "other"
  readonly model: string | undefined
  readonly inputs: ReadonlyArray<string>
  readonly inputCount: number
  readonly encodingFormat: string | undefined
  readonly dimensions: number | undefined
  readonly authorization: string | undefined
  readonly at: number
  /** Filled when the answer is sent (undefined while hanging). */
  status: number | undefined
}

/** mulberry32: small seeded RNG so failure patterns repeat run to run. */
export const rng = (seed: number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const sleep = (ms: number) => (ms > 0 ? new Promise<void>((r) => setTimeout(r, ms)) : Promise.resolve())

const base = (model: string) => model.split(":")[0]
/** Ollama reads an untagged name as `:latest`. */
const withTag = (model: string) => (model.includes(":") ? model : `${model}:latest`)

const toBase64 = (v: ReadonlyArray<number>) => {
  const buf = Buffer.alloc(v.length * 4)
  v.forEach((x, i) => buf.writeFloatLE(x, i * 4))
  return buf.toString("base64")
}

class HttpError {
  constructor(readonly status: number, readonly body: unknown, readonly headers: Record<string, string> = {}) {}
}

export class FakeProviderServer {
  behaviour: FakeBehaviour = defaultBehaviour()
  readonly requests: Array<RecordedRequest> = []
  /** Sum of the input tokens reported in successful answers (`usage.prompt_tokens`, `prompt_eval_count`). */
  reportedTokens = 0
  private server: Server | undefined
  private readonly sockets = new Set<Socket>()
  private random = rng(this.behaviour.seed)
  private seededWith = this.behaviour.seed
  private serialTail: Promise<void> = Promise.resolve()
  private port = 0

  /** Listens on a random port of 127.0.0.1. */
  async start(): Promise<this> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => this.send(res, 500, { error: String(error) }))
    })
    server.on("connection", (socket) => {
      this.sockets.add(socket)
      socket.on("close", () => this.sockets.delete(socket))
    })
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject)
      server.listen(0, "127.0.0.1", () => resolve())
    })
    this.server = server
    this.port = (server.address() as AddressInfo).port
    return this
  }

  /** Closes the server and every open (also hanging) connection. */
  async close(): Promise<void> {
    const server = this.server
    this.server = undefined
    if (server === undefined) return
    for (const socket of this.sockets) socket.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }

  /** Back to default behaviour, RNG reseeded, requests forgotten. */
  reset(overrides: Partial<FakeBehaviour> = {}): void {
    this.behaviour = { ...defaultBehaviour(), ...overrides }
    this.random = rng(this.behaviour.seed)
    this.seededWith = this.behaviour.seed
    this.requests.length = 0
    this.reportedTokens = 0
  }

  /** For OLLAMA_HOST. */
  get ollamaHost(): string {
    return `http://127.0.0.1:${this.port}`
  }

  /** For OPENAI_BASE_URL. */
  get openaiBaseUrl(): string {
    return `http://127.0.0.1:${this.port}/v1`
  }

  /** Embedding requests only (what a test counts as provider calls). */
  embedRequests(protocol?: "ollama" | "openai"): Array<RecordedRequest> {
    return this.requests.filter((r) => r.protocol !== "other" && (protocol === undefined || r.protocol === protocol))
  }

  /** Total inputs over all embedding requests. */
  inputCount(protocol?: "ollama" | "openai"): number {
    return this.embedRequests(protocol).reduce((n, r) => n + r.inputCount, 0)
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? "/").split("?")[0]
    const method = req.method ?? "GET"
    const raw = await new Promise<string>((resolve) => {
      const chunks: Array<Buffer> = []
      req.on("data", (c: Buffer) => chunks.push(c))
      req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
      req.on("error", () => resolve(""))
    })
    const protocol = method === "POST" && path === "/api/embed"
      ? "ollama"
      : method === "POST" && path === "/v1/embeddings"
      ? "openai"
      : "other"
    let body: Record<string, unknown> = {}
    try {
      body = raw === "" ? {} : (JSON.parse(raw) as Record<string, unknown>)
    } catch {
      return this.send(
        res,
        400,
        protocol === "openai"
          ? openaiError("invalid JSON body", "invalid_request_error")
          : { error: "invalid JSON body" }
      )
    }
    const inputs = typeof body.input === "string"
      ? [body.input]
      : Array.isArray(body.input)
      ? body.input.map((x) => String(x))
      : []
    const auth = req.headers.authorization
    const record: RecordedRequest = {
      method,
      path,
      protocol,
      model: typeof body.model === "string" ? body.model : undefined,
      inputs,
      inputCount: inputs.length,
      encodingFormat: typeof body.encoding_format === "string" ? body.encoding_format : undefined,
      dimensions: typeof body.dimensions === "number" ? body.dimensions : undefined,
      authorization: auth,
      at: Date.now(),
      status: undefined
    }
    this.requests.push(record)
    const b = this.behaviour
    if (b.apiKey !== undefined && auth !== `Bearer ${b.apiKey}`) {
      record.status = 401
      return this.send(
        res,
        401,
        protocol === "ollama" || path.startsWith("/api/")
          ? { error: "unauthorized" }
          : openaiError(
            `Incorrect API key provided: ${
              (auth ?? "").replace(/^Bearer /, "").slice(0, 6)
            }***. You can find your API key at https://platform.openai.com/account/api-keys.`,
            "invalid_request_error",
            "invalid_api_key"
          )
      )
    }
    if (protocol === "other") return this.other(method, path, res, record)

    if (b.serial) {
      // Ollama-like: one request at a time; later requests wait for the earlier ones.
      const previous = this.serialTail
      let done!: () => void
      this.serialTail = new Promise<void>((r) => (done = r))
      await previous
      try {
        await this.embed(protocol, body, inputs, res, record)
      } finally {
        done()
      }
    } else {
      await this.embed(protocol, body, inputs, res, record)
    }
  }

  private other(method: string, path: string, res: ServerResponse, record: RecordedRequest) {
    if (method === "GET" && path === "/api/version") {
      record.status = 200
      return this.send(res, 200, { version: "0.12.6" })
    }
    if (method === "GET" && path === "/api/tags") {
      record.status = 200
      const names = this.behaviour.models ?? Object.keys(this.behaviour.modelDimensions)
      return this.send(res, 200, {
        models: names.map((name) => ({
          name: name.includes(":") ? name : `${name}:latest`,
          model: name.includes(":") ? name : `${name}:latest`,
          modified_at: "2025-01-01T00:00:00Z",
          size: 669_615_493,
          digest: "sha256:" + "0".repeat(64),
          details: {
            format: "gguf",
            family: "bert",
            families: ["bert"],
            parameter_size: "334M",
            quantization_level: "F16"
          }
        }))
      })
    }
    record.status = 404
    return this.send(
      res,
      404,
      path.startsWith("/v1/")
        ? openaiError(`Unknown request URL: ${method} ${path}`, "invalid_request_error")
        : { error: "not found" }
    )
  }

  private async embed(
    protocol: "ollama" | "openai",
    body: Record<string, unknown>,
    inputs: Array<string>,
    res: ServerResponse,
    record: RecordedRequest
  ) {
    const b = this.behaviour
    if (this.seededWith !== b.seed) {
      this.random = rng(b.seed)
      this.seededWith = b.seed
    }
    try {
      if (b.hang) {
        // Keep the connection open without answering; close() destroys it.
        return await new Promise<void>((resolve) => res.on("close", resolve))
      }
      await sleep(b.latencyMs + b.perInputLatencyMs * inputs.length)
      if (b.failNext > 0) {
        b.failNext--
        throw this.failure(protocol, b.failNextStatus)
      }
      if (b.failureRate > 0 && this.random() < b.failureRate) throw this.failure(protocol, b.failureStatus)
      const model = typeof body.model === "string" ? body.model : ""
      if (model === "") {
        throw protocol === "ollama"
          ? new HttpError(400, { error: "model is required" })
          : new HttpError(
            400,
            openaiError("you must provide a model parameter", "invalid_request_error", null, "model")
          )
      }
      if (b.models !== undefined && !b.models.some((m) => withTag(m) === withTag(model))) {
        throw protocol === "ollama"
          ? new HttpError(404, { error: `model "${model}" not found, try pulling it first` })
          : new HttpError(
            404,
            openaiError(
              `The model \`${model}\` does not exist or you do not have access to it.`,
              "invalid_request_error",
              "model_not_found"
            )
          )
      }
      if (b.poisonMarker !== undefined && inputs.some((t) => t.includes(b.poisonMarker!))) {
        throw protocol === "ollama"
          ? new HttpError(400, { error: "input length exceeds the context length" })
          : new HttpError(
            400,
            openaiError(
              "This model's maximum context length is 8192 tokens, however you requested 9000 tokens " +
                "(9000 in your prompt; 0 for the completion). Please reduce your prompt; or completion length.",
              "invalid_request_error",
              null,
              "input"
            )
          )
      }
      const requested = typeof body.dimensions === "number" ? body.dimensions : undefined
      const dims = b.wrongDimension ?? requested ?? b.modelDimensions[base(model)] ?? b.modelDimensions[model] ??
        b.defaultDimensions
      let vectors: Array<Array<number>> = inputs.map((t) => embedLocal(t, dims))
      if (b.wrongCount) vectors = vectors.length > 1 ? vectors.slice(0, -1) : [...vectors, ...vectors]
      if (b.nonFinite && vectors.length > 0) vectors[0] = [NaN, ...vectors[0].slice(1)]
      const tokens = Math.round(inputs.reduce((n, t) => n + estimateTokens(t), 0) * b.usageScale)
      if (b.malformedJson) {
        record.status = 200
        res.writeHead(200, { "content-type": "application/json" })
        return res.end(
          protocol === "ollama"
            ? `{"model":"${model}","embeddings":[[0.1,0.2`
            : `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,`
        )
      }
      record.status = 200
      this.reportedTokens += tokens
      if (protocol === "ollama") {
        return this.send(res, 200, {
          model,
          embeddings: vectors,
          total_duration: 1_000_000 * (1 + inputs.length),
          load_duration: 100_000,
          prompt_eval_count: tokens
        })
      }
      const wantsBase64 = b.base64 || body.encoding_format === "base64"
      const data = vectors.map((v, index) => ({
        object: "embedding",
        index,
        embedding: wantsBase64 ? toBase64(v) : v
      }))
      if (b.shuffle) data.reverse()
      return this.send(res, 200, {
        object: "list",
        data,
        model,
        usage: { prompt_tokens: tokens, total_tokens: tokens }
      })
    } catch (e) {
      if (!(e instanceof HttpError)) throw e
      record.status = e.status
      return this.send(res, e.status, e.body, e.headers)
    }
  }

  private failure(protocol: "ollama" | "openai", status: number): HttpError {
    const b = this.behaviour
    if (status === 429) {
      const headers = b.rateLimitHeaders ?? {
        "retry-after": String(b.retryAfterSeconds),
        "x-ratelimit-reset-requests": `${b.retryAfterSeconds}s`
      }
      return protocol === "ollama"
        ? new HttpError(429, { error: "too many requests" }, headers)
        : new HttpError(
          429,
          openaiError(
            `Rate limit reached for requests. Please try again in ${b.retryAfterSeconds}s.`,
            "requests",
            "rate_limit_exceeded"
          ),
          headers
        )
    }
    if (status === 401) {
      return protocol === "ollama"
        ? new HttpError(401, { error: "unauthorized" })
        : new HttpError(401, openaiError("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"))
    }
    if (status === 403) {
      return protocol === "ollama"
        ? new HttpError(403, { error: "forbidden" })
        : new HttpError(403, openaiError("You are not allowed to sample from this model", "invalid_request_error"))
    }
    if (status === 400) {
      return protocol === "ollama"
        ? new HttpError(400, { error: "invalid input" })
        : new HttpError(400, openaiError("'$.input' is invalid.", "invalid_request_error", null, "input"))
    }
    return protocol === "ollama"
      ? new HttpError(status, { error: "llama runner process has terminated: signal: killed" })
      : new HttpError(
        status,
        openaiError("The server had an error while processing your request. Sorry about that!", "server_error")
      )
  }

  private send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
    if (res.destroyed) return
    const text = JSON.stringify(body)
    res.writeHead(status, {
      "content-type": "application/json; charset=utf-8",
      "content-length": Buffer.byteLength(text),
      ...headers
    })
    res.end(text)
  }
}

const openaiError = (message: string, type: string, code: string | null = null, param: string | null = null) => ({
  error: { message, type, param, code }
})

/** Starts a fake server (for `beforeAll`); close it with `close()`. */
export const startFakeProviderServer = async (overrides: Partial<FakeBehaviour> = {}): Promise<FakeProviderServer> => {
  const server = new FakeProviderServer()
  server.reset(overrides)
  return server.start()
}
