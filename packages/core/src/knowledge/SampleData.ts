import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Schema } from "effect"
import { AutoEmbedConfig } from "../config/AutoEmbedConfig.js"
import { AtomInput, Extraction, MessageInput } from "./Extraction.js"
import sample from "./sample-data.json" with { type: "json" }

/**
 * The bundled sample: a fictional team's chat about running a software product, and the topics
 * and knowledge atoms an extraction step would have drawn from it. Written for this project.
 */
export const SampleData = Schema.Struct({
  /** The file spells messages as the API's JSON does (`chat_id`, `sent_at`). */
  messages: Schema.Array(Schema.Struct({
    ref: Schema.String,
    ...MessageInput.fields,
    chatId: MessageInput.fields.chatId.pipe(Schema.fromKey("chat_id")),
    sentAt: MessageInput.fields.sentAt.pipe(Schema.fromKey("sent_at"))
  })),
  threads: Schema.Array(Schema.Struct({
    topic: Schema.Struct({ name: Schema.String, description: Schema.String }),
    /** `ref`s of the messages this thread was extracted from. */
    messages: Schema.Array(Schema.String),
    atoms: Schema.Array(AtomInput)
  }))
})
export type SampleData = typeof SampleData.Type

export interface SampleDataResult {
  readonly loaded: boolean
  readonly messages: number
  readonly atoms: number
  readonly topics: number
}

/** Sample messages get external ids under this prefix, so loading twice updates instead of duplicating. */
const EXTERNAL_ID_PREFIX = "sample:"

/**
 * Loads the sample data set through the normal write path (`Extraction.ingestMessages` and
 * `Extraction.persist`), so the pipeline embeds it like any other data; only when the database
 * has no atoms and no messages, so it never mixes into real data.
 */
export const loadSampleDataIfEmpty = Effect.fn("SampleData.loadIfEmpty")(function*() {
  const sql = yield* SqlClient.SqlClient
  const extraction = yield* Extraction
  const config = yield* AutoEmbedConfig
  if (!config.builtin) return { loaded: false, messages: 0, atoms: 0, topics: 0 } satisfies SampleDataResult
  const [row] = yield* sql<
    { n: number }
  >`SELECT ((SELECT count(*) FROM atoms) + (SELECT count(*) FROM messages))::int AS n`
  if (Number(row?.n ?? 0) > 0) return { loaded: false, messages: 0, atoms: 0, topics: 0 } satisfies SampleDataResult
  const data = yield* Schema.decodeUnknown(SampleData)(sample).pipe(Effect.orDie)

  const { ids } = yield* extraction.ingestMessages({
    messages: data.messages.map(({ ref, ...m }) => ({ ...m, externalId: EXTERNAL_ID_PREFIX + ref }))
  })
  const idOf = new Map(data.messages.map((m, i) => [m.ref, ids[i]]))
  let atoms = 0
  for (const thread of data.threads) {
    const result = yield* extraction.persist({
      messageIds: thread.messages.map((ref) => idOf.get(ref)!).filter((id) => id !== undefined),
      topics: [thread.topic],
      atoms: thread.atoms
    })
    atoms += result.atomIds.length
  }
  return { loaded: true, messages: ids.length, atoms, topics: data.threads.length } satisfies SampleDataResult
})
