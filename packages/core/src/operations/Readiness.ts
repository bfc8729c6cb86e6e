import * as SqlClient from "@effect/sql/SqlClient"
import { Duration, Effect, Either, Ref } from "effect"
import { EmbeddingProvider } from "../providers/EmbeddingProvider.js"
import { Database } from "../storage/Database.js"

/** A dependency check: did it answer, how fast, and why not. */
export interface Check {
  readonly ok: boolean
  readonly ms: number
  readonly error?: string
}

export interface ReadinessReport {
  readonly database: Check & { readonly kind: string }
  readonly provider: Check & { readonly provider: string; readonly model: string }
}

const CHECK_TIMEOUT = Duration.seconds(3)
/** A provider call per probe would cost money on paid APIs and load on Ollama: reuse a success for this long. */
const PROVIDER_OK_TTL_MS = 30_000
const PROVIDER_FAIL_TTL_MS = 5_000

const messageOf = (e: unknown) =>
  String(e !== null && typeof e === "object" && "message" in e ? e.message : e).slice(0, 200)

const timed = <E, R>(effect: Effect.Effect<unknown, E, R>, what: string) =>
  Effect.gen(function*() {
    const started = performance.now()
    const result = yield* effect.pipe(
      Effect.timeoutFail({ duration: CHECK_TIMEOUT, onTimeout: () => `${what} did not answer within 3 s` }),
      Effect.either
    )
    const ms = Math.round(performance.now() - started)
    return Either.match(result, {
      onLeft: (e): Check => ({ ok: false, ms, error: messageOf(e) }),
      onRight: (): Check => ({ ok: true, ms })
    })
  })

/**
 * Whether this process can serve: the database answers a query and the provider embeds a probe
 * (its result cached, see the TTLs). What /readyz reports; never fails, a failing check says why.
 */
export class Readiness extends Effect.Service<Readiness>()("@autoembed/core/Readiness", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const database = yield* Database
    const provider = yield* EmbeddingProvider
    const lastProbe = yield* Ref.make<{ readonly check: Check; readonly at: number } | undefined>(undefined)

    const probeProvider = Effect.gen(function*() {
      const last = yield* Ref.get(lastProbe)
      const ttl = last?.check.ok ? PROVIDER_OK_TTL_MS : PROVIDER_FAIL_TTL_MS
      if (last !== undefined && Date.now() - last.at < ttl) return last.check
      const check = yield* timed(provider.embed(["autoembed readiness probe"], "query"), "the embedding provider")
      yield* Ref.set(lastProbe, { check, at: Date.now() })
      return check
    })

    const check = Effect.fn("Readiness.check")(function*() {
      const db = yield* timed(sql`SELECT 1`, "the database")
      const prov = yield* probeProvider
      const report: ReadinessReport = {
        database: { ...db, kind: database.kind },
        provider: { ...prov, provider: provider.provider, model: provider.model }
      }
      return report
    })

    return { check }
  })
}) {}
