import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Ref, Schema } from "effect"
import { AutoEmbedConfig } from "../config/AutoEmbedConfig.js"
import { EXIT_CODES, type Failure, FailureTypeId } from "../Failure.js"
import type { Source } from "../sources/SourceCatalog.js"
import { Sources } from "../sources/Sources.js"
import { ActiveModel } from "../storage/ActiveModel.js"
import { stateTables } from "../storage/State.js"
import { defaultSetName, readSetRows, type Row, type SetRow, setSource, toSetRow } from "./SetRows.js"

export type { SetRow } from "./SetRows.js"

/** A set name or source that does not exist, or a lifecycle step that is not allowed now. */
export class SetError extends Schema.TaggedError<SetError>()("SetError", {
  message: Schema.String,
  status: Schema.optionalWith(Schema.Literal(400, 404, 409), { default: () => 400 })
}) implements Failure {
  get [FailureTypeId](): FailureTypeId {
    return FailureTypeId
  }
  get exitCode() {
    return EXIT_CODES.failed
  }
  get http() {
    return {
      status: this.status,
      code: this.status === 404 ? "set_not_found" : this.status === 409 ? "set_conflict" : "set_invalid",
      message: this.message
    } as const
  }
}

/**
 * Every embedding set of the declared sources, and the source objects the store and the workers
 * embed them through (`targets`: the configured sets, then the others). At start-up it records the
 * configured set of each source (the process's provider and model) and makes it active where no
 * set is. Other processes add and drop sets: `refresh` re-reads them (the workers do on every
 * sweep, and when they claim a key they do not know).
 */
export class SetRegistry extends Effect.Service<SetRegistry>()("@autoembed/core/SetRegistry", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const config = yield* AutoEmbedConfig
    const sources = yield* Sources
    // The configured sets are embedded by the process's provider: its `provider/model` key.
    const configuredModel = (yield* ActiveModel).key
    const slash = configuredModel.indexOf("/")
    const provider = {
      provider: configuredModel.slice(0, slash),
      model: configuredModel.slice(slash + 1),
      dimensions: config.dimensions
    }
    const t = stateTables(sql, config.stateSchema)

    const rows = Effect.map(
      readSetRows(sql, config.stateSchema),
      (rs) => rs.filter((r) => sources.names.includes(r.source))
    )

    /** The configured set of every source, named after the process's model; active where none is. */
    const registerConfigured = sql.withTransaction(Effect.gen(function*() {
      yield* sql`SELECT pg_advisory_xact_lock(7215030002)`
      const existing = (yield* sql<Row>`SELECT * FROM ${t.sets}`).map(toSetRow)
      for (const s of sources.all) {
        const taken = existing.filter((r) => r.source === s.name && r.key !== s.name).map((r) => r.name)
        const name = defaultSetName(s.name, provider.model, provider.dimensions, taken)
        const anyActive = existing.some((r) => r.source === s.name && r.active)
        yield* sql`
          INSERT INTO ${t.sets} (source, name, key, provider, model, dimensions, configured, active, activated_at)
          VALUES (${s.name}, ${name}, ${s.name}, ${provider.provider}, ${provider.model}, ${provider.dimensions},
            true, ${!anyActive}, ${anyActive ? null : new Date()})
          ON CONFLICT (key) DO UPDATE SET name = EXCLUDED.name, provider = EXCLUDED.provider,
            model = EXCLUDED.model, dimensions = EXCLUDED.dimensions, configured = true`
      }
    }))
    yield* registerConfigured

    const build = (all: ReadonlyArray<SetRow>): ReadonlyArray<Source> => [
      ...sources.all,
      ...all.filter((r) => !r.configured).flatMap((r) => {
        const base = sources.all.find((s) => s.name === r.source)
        return base ? [setSource(base, r, config.stateSchema)] : []
      })
    ]
    const targetsRef = yield* Ref.make(build(yield* rows))

    const refresh = Effect.flatMap(rows, (all) => {
      const targets = build(all)
      return Effect.as(Ref.set(targetsRef, targets), targets)
    })

    /** The source object of a set key; re-reads the sets once when the key is new to this process. */
    const target = (key: string) =>
      Effect.gen(function*() {
        const known = (yield* Ref.get(targetsRef)).find((s) => s.name === key)
        if (known) return known
        return (yield* refresh).find((s) => s.name === key)
      })

    /**
     * A declared source, for the lifecycle steps: an unknown name there is the caller's mistake
     * (404), where `Sources.get`'s SourceError stands for a broken configuration.
     */
    const declared = (name: string) =>
      Effect.mapError(sources.get(name), (e) => new SetError({ status: 404, message: e.message }))

    /** A source's set by name; the message lists the sets there are. */
    const find = (source: string, name: string) =>
      Effect.gen(function*() {
        yield* declared(source)
        const all = (yield* rows).filter((r) => r.source === source)
        const found = all.find((r) => r.name === name || r.key === name)
        if (found) return { row: found, all }
        return yield* new SetError({
          status: 404,
          message: `Source "${source}" has no embedding set "${name}"; its sets are ${
            all.map((r) => r.name).join(", ") || "none"
          }`
        })
      })

    /**
     * The source objects a search reads for these entity types: each one's active set, or the set
     * named `set`. With `narrow` (the caller did not name the types) a named set picks the types
     * that have it, since set names are per source; otherwise every named type must have it. Read
     * per search, so an activation in another process takes effect at once.
     */
    const searchTargets = (names: ReadonlyArray<string>, set?: string, narrow = false) =>
      Effect.gen(function*() {
        const all = yield* rows
        const searched = set !== undefined && narrow
          ? names.filter((n) => all.some((r) => r.source === n && r.name === set))
          : names
        if (searched.length === 0 && names.length > 0) {
          return yield* new SetError({
            status: 404,
            message: `No source has an embedding set "${set}"; the sets are ${
              all.filter((r) => names.includes(r.source)).map((r) => r.name).join(", ") || "none"
            }`
          })
        }
        const chosen: Array<Source> = []
        for (const name of searched) {
          const row = all.find((r) => r.source === name && (set === undefined ? r.active : r.name === set))
          if (row === undefined && set !== undefined) {
            return yield* new SetError({
              status: 404,
              message: `Source "${name}" has no embedding set "${set}"; its sets are ${
                all.filter((r) => r.source === name).map((r) => r.name).join(", ") || "none"
              }`
            })
          }
          const key = row?.key ?? name
          const found = (yield* target(key)) ?? sources.all.find((s) => s.name === name)
          if (found) chosen.push(found)
        }
        return chosen
      })

    return {
      /** Every set of the declared sources, as recorded now. */
      rows,
      targets: Ref.get(targetsRef),
      refresh,
      target,
      declared,
      find,
      searchTargets,
      /** The process's own model key: the configured sets'. */
      configuredModel
    } as const
  })
}) {}
