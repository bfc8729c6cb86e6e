import { EmbeddingSets, SetError } from "@autoembed/core"
import { Effect } from "effect"
import type { Run } from "../Http.js"
import type { Handlers } from "../Serve.js"

type SetHandlers = Pick<Handlers, "listSets" | "getSet" | "addSet" | "activateSet" | "rollbackSet" | "dropSet">

/**
 * A path parameter longer than any source or set name can be (63, 200) names nothing: answered
 * like an unknown name, without a lookup.
 */
const named = (params: { readonly source: string; readonly set?: string }) =>
  params.source.length > 63 || (params.set?.length ?? 0) > 200
    ? Effect.fail(new SetError({ status: 404, message: "No embedding set of that name" }))
    : Effect.succeed({ source: params.source, set: params.set ?? "" })

const withSets = <A, E, R>(f: (sets: EmbeddingSets) => Effect.Effect<A, E, R>) => Effect.flatMap(EmbeddingSets, f)

/** The embedding-set lifecycle: list, add, activate, roll back, drop (core's EmbeddingSets does each step). */
export const setHandlers = (run: Run): SetHandlers => ({
  listSets: async ({ query }) => ({
    status: 200,
    body: { sets: await run(withSets((s) => s.list(query.source))) }
  }),
  getSet: async ({ params }) => ({
    status: 200,
    body: await run(Effect.flatMap(named(params), (p) => withSets((s) => s.get(p.source, p.set))))
  }),
  addSet: async ({ body }) => ({
    status: 201,
    body: (await run(withSets((s) => s.add(body)))).report
  }),
  activateSet: async ({ body, params }) => ({
    status: 200,
    body: await run(
      Effect.flatMap(named(params), (p) => withSets((s) => s.activate(p.source, p.set, { force: body.force })))
    )
  }),
  rollbackSet: async ({ params }) => ({
    status: 200,
    body: await run(Effect.flatMap(named(params), (p) => withSets((s) => s.rollback(p.source))))
  }),
  dropSet: async ({ params }) => ({
    status: 200,
    body: await run(Effect.flatMap(named(params), (p) => withSets((s) => s.drop(p.source, p.set))))
  })
})
