import { Duration, Effect, Schedule } from "effect"
import { AutoEmbedConfig, type AutoEmbedConfigShape } from "../config/AutoEmbedConfig.js"
import { ConfigFileError, type DeclaredSet } from "../config/SourceConfig.js"
import { originOf } from "../sources/Sources.js"
import { EmbeddingSets } from "./EmbeddingSets.js"
import { SetRegistry } from "./SetRegistry.js"
import type { SetRow } from "./SetRows.js"

/** One set of the configuration (`sources.<source>.sets.<name>`). */
export interface SetDeclaration {
  readonly source: string
  readonly name: string
  readonly set: DeclaredSet
  /** `sources.messages.sets.small`: what a message tells the user to edit. */
  readonly key: string
}

/** Every set the configuration declares, in the file's order. */
export const setDeclarations = (config: AutoEmbedConfigShape): ReadonlyArray<SetDeclaration> =>
  Object.entries(config.sources).flatMap(([source, c]) =>
    Object.entries(c.sets ?? {}).map(([name, set]) => ({ source, name, set, key: `sources.${source}.sets.${name}` }))
  )

const describeSet = (s: {
  provider: string
  model: string
  dimensions?: number | undefined
  baseUrl?: string | null | undefined
  vector?: string | null | undefined
}) =>
  `${s.provider} ${s.model}${s.dimensions === undefined ? "" : ` at ${s.dimensions} dimensions`}${
    s.baseUrl ? ` from ${s.baseUrl}` : ""
  }${s.vector ? ` into column ${s.vector}` : ""}`

/** Where the recorded set differs from its declaration; undefined when it does not. */
const difference = (d: DeclaredSet, row: SetRow): string | undefined => {
  const same = d.provider === row.provider && d.model === row.model &&
    (d.dimensions === undefined || d.dimensions === row.dimensions) &&
    (d.base_url ?? null) === row.baseUrl && (d.vector ?? null) === row.vectorColumn
  if (same) return undefined
  return `the database's set is ${describeSet({ ...row, vector: row.vectorColumn })}, the file says ${
    describeSet({ ...d, baseUrl: d.base_url })
  }`
}

/**
 * The sets the configuration file declares (`sources.<source>.sets`), made real at start-up: a
 * missing one is added (its storage, triggers and queued backfill, which the workers carry out),
 * an existing one must match its declaration (a set never changes model: a new model is a new
 * name). A set declared `active: true` becomes the active set as soon as it is complete, once;
 * every process watches for that, and the switch is idempotent, so the first to see it wins.
 * Sets missing from the file are left alone: dropping vectors is `sets drop`'s, never an edit's.
 */
export class DeclaredSets extends Effect.Service<DeclaredSets>()("@autoembed/core/DeclaredSets", {
  scoped: Effect.gen(function*() {
    const config = yield* AutoEmbedConfig
    const sets = yield* EmbeddingSets
    const registry = yield* SetRegistry
    const origin = originOf(config)
    const declarations = setDeclarations(config)
    const mistake = (d: SetDeclaration, message: string) =>
      new ConfigFileError({ message: `${origin}: ${d.key}: ${message}` })

    const recorded = (d: SetDeclaration) =>
      Effect.map(registry.rows, (rows) => rows.find((r) => r.source === d.source && r.name === d.name))

    const matches = (d: SetDeclaration, row: SetRow) => {
      const differs = difference(d.set, row)
      return differs === undefined ? Effect.void : Effect.fail(
        mistake(
          d,
          `${differs}. A set keeps its model: declare the new one under another name ` +
            `(and drop this one with \`pnpm cli sets drop ${d.source} ${d.name}\`)`
        )
      )
    }

    const ensure = (d: SetDeclaration) =>
      Effect.gen(function*() {
        const existing = yield* recorded(d)
        if (existing) return yield* matches(d, existing)
        const added = yield* sets.add({
          source: d.source,
          name: d.name,
          provider: d.set.provider,
          model: d.set.model,
          dimensions: d.set.dimensions,
          baseUrl: d.set.base_url,
          vector: d.set.vector
        }).pipe(
          Effect.map(() => true),
          // Another process starting at the same moment added it first: it must still match.
          Effect.catchTag("SetError", (e) =>
            e.status === 409
              ? Effect.flatMap(
                recorded(d),
                (row) => row ? Effect.as(matches(d, row), false) : Effect.fail(mistake(d, e.message))
              )
              : Effect.fail(mistake(d, e.message)))
        )
        if (added) {
          yield* Effect.logInfo(
            `autoembed: added embedding set "${d.name}" of ${d.source} (${d.key} in ${origin}); the workers backfill it`
          )
        }
      })

    yield* Effect.forEach(declarations, ensure, { discard: true })

    /**
     * Activates the sets declared `active: true` that are complete and were never active; returns
     * how many still wait. An incomplete set is refused by `activate` and tried again later.
     */
    const activateDue = Effect.gen(function*() {
      let waiting = 0
      for (const d of declarations.filter((x) => x.set.active === true)) {
        const row = yield* recorded(d)
        if (row === undefined || row.active || row.activatedAt !== null) continue
        const done = yield* sets.activate(d.source, d.name).pipe(
          Effect.as(true),
          Effect.catchTag("SetError", () => Effect.succeed(false))
        )
        if (done) {
          yield* Effect.logInfo(
            `autoembed: embedding set "${d.name}" of ${d.source} is complete and now active (${d.key}: active: true)`
          )
        } else waiting++
      }
      return waiting
    })

    if (declarations.some((d) => d.set.active === true)) {
      const watch = activateDue.pipe(
        Effect.catchAll((e) => Effect.as(Effect.logWarning("autoembed: activating a declared set failed", e), 1)),
        Effect.repeat({
          schedule: Schedule.spaced(Duration.millis(config.sweepIntervalMs)),
          while: (waiting) => waiting > 0
        })
      )
      yield* Effect.forkScoped(watch)
    }

    return { declarations, activateDue } as const
  })
}) {}
