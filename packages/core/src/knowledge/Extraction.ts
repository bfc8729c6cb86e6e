import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Schema } from "effect"
import { AutoEmbedConfig } from "../config/AutoEmbedConfig.js"
import { EXIT_CODES, type Failure, FailureTypeId, type HttpAnswer } from "../Failure.js"
import { PendingSignal, type RowKey } from "../pipeline/PendingSignal.js"
import { conflictSchedule, isConflict } from "../storage/SqlFailure.js"
import { stateTables } from "../storage/State.js"

const Text = (max: number) => Schema.String.pipe(Schema.minLength(1), Schema.maxLength(max))
const OptionalText = (max: number) => Schema.optional(Schema.NullOr(Schema.String.pipe(Schema.maxLength(max))))
const Id = Schema.Int.pipe(Schema.positive())

export const MessageInput = Schema.Struct({
  content: Text(100_000).pipe(Schema.filter((s) => s.trim().length > 0 || "content must not be blank")),
  chatId: OptionalText(200),
  author: OptionalText(200),
  // Schema.Date refuses strings that are not dates ("last tuesday"), unlike DateFromString.
  sentAt: Schema.optional(Schema.NullOr(Schema.Date)),
  externalId: OptionalText(200),
  importance: Schema.optional(Schema.NullOr(Schema.Number.pipe(Schema.between(0, 1))))
})
export type MessageInput = typeof MessageInput.Type

/** The bounds of a batch of messages, for any spelling of a message (the HTTP contract's wire one too). */
export const messageBatch = <A, I, R>(message: Schema.Schema<A, I, R>) =>
  Schema.Array(message).pipe(Schema.minItems(1), Schema.maxItems(1000))

export const IngestMessagesRequest = Schema.Struct({
  messages: messageBatch(MessageInput)
})
export type IngestMessagesRequest = typeof IngestMessagesRequest.Type

export const AtomLinkInput = Schema.Struct({
  /** The title of another atom in this extraction (or an existing atom's title), or an existing atom's id. */
  to: Schema.Union(Text(500), Id),
  relation: Text(100)
})

export const AtomInput = Schema.Struct({
  /** Update this existing atom (a new version when title or content changes). */
  id: Schema.optional(Id),
  type: Text(50).pipe(
    Schema.pattern(/^[a-z][a-z0-9_-]*$/, {
      message: () => "type must be a lowercase word such as insight, problem, decision"
    })
  ),
  title: Text(500),
  content: Text(50_000),
  topic: Schema.optional(Text(200)),
  confidence: Schema.optional(Schema.Number.pipe(Schema.between(0, 1))),
  links: Schema.optional(Schema.Array(AtomLinkInput).pipe(Schema.maxItems(100)))
})
export type AtomInput = typeof AtomInput.Type

export const ExtractionRequest = Schema.Struct({
  messageIds: Schema.optionalWith(Schema.Array(Id).pipe(Schema.maxItems(1000)), { default: () => [] }),
  topics: Schema.optionalWith(
    Schema.Array(
      Schema.Struct({ name: Text(200), description: Schema.optional(Schema.String.pipe(Schema.maxLength(5000))) })
    ).pipe(Schema.maxItems(100)),
    { default: () => [] }
  ),
  atoms: Schema.optionalWith(Schema.Array(AtomInput).pipe(Schema.maxItems(500)), { default: () => [] })
})
export type ExtractionRequest = typeof ExtractionRequest.Type
/** What callers pass: the lists are optional. */
export type ExtractionInput = typeof ExtractionRequest.Encoded

export interface ExtractionResult {
  readonly topicIds: ReadonlyArray<number>
  readonly atomIds: ReadonlyArray<number>
  readonly messageIds: ReadonlyArray<number>
}

/** The request refers to something that does not exist (unknown message or atom id, link target). */
export class ExtractionInvalid extends Schema.TaggedError<ExtractionInvalid>()("ExtractionInvalid", {
  message: Schema.String,
  details: Schema.optional(Schema.Unknown)
}) implements Failure {
  get [FailureTypeId](): FailureTypeId {
    return FailureTypeId
  }
  get exitCode() {
    return EXIT_CODES.failed
  }
  get http(): HttpAnswer {
    return { status: 422, code: "unknown_reference", message: this.message, details: this.details ?? null }
  }
}

/** The built-in knowledge model is off, so its tables and endpoints do not exist here. */
export class BuiltinDisabled extends Schema.TaggedError<BuiltinDisabled>()("BuiltinDisabled", {
  message: Schema.String
}) implements Failure {
  get [FailureTypeId](): FailureTypeId {
    return FailureTypeId
  }
  get exitCode() {
    return EXIT_CODES.failed
  }
  get http(): HttpAnswer {
    return { status: 404, code: "builtin_disabled", message: this.message }
  }
}

const builtinOff = new BuiltinDisabled({
  message:
    "The built-in knowledge model (messages, atoms, topics) is off because a configuration file declares sources; " +
    "set AUTOEMBED_BUILTIN=true (or \"builtin\": true in the file) to use it beside them"
})

const byExternalId = (a: MessageInput, b: MessageInput): number => {
  const x = a.externalId ?? null
  const y = b.externalId ?? null
  if (x === null || y === null) return x === y ? 0 : x === null ? 1 : -1
  return x < y ? -1 : x > y ? 1 : 0
}

/**
 * A transaction that lost a race with a concurrent one (deadlock, serialization failure) runs
 * again from the start: a client should not see a 5xx because another client wrote the same rows.
 */
const retryConflicts = <A, E, R>(transaction: Effect.Effect<A, E, R>) =>
  Effect.retry(transaction, { schedule: conflictSchedule, while: isConflict })

/**
 * Persists messages and extraction results. Pending-embedding state is written by the tables'
 * triggers in the same transaction; after commit the hook wakes the queue with the ids, never
 * blocking or failing the write (the rows are pending in the database either way).
 */
export class Extraction extends Effect.Service<Extraction>()("@autoembed/core/Extraction", {
  effect: Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const signal = yield* PendingSignal
    const config = yield* AutoEmbedConfig
    const st = stateTables(sql, config.stateSchema)
    const requireBuiltin = config.builtin ? Effect.void : Effect.fail(builtinOff)

    /** The extraction hook: wake the embedding queue for these rows. Never fails, never blocks. */
    const afterExtraction = (
      ids: { readonly atomIds?: ReadonlyArray<number | string>; readonly messageIds?: ReadonlyArray<number | string> }
    ) =>
      signal.notify([
        ...(ids.atomIds ?? []).map((id): RowKey => ({ source: "atoms", rowId: String(id) })),
        ...(ids.messageIds ?? []).map((id): RowKey => ({ source: "messages", rowId: String(id) }))
      ])

    /**
     * Writes in a fixed order (by external_id, then the rest), so two requests sharing ids lock the
     * same rows in the same order instead of deadlocking; ids come back in the request's order.
     */
    const insertMessages = (messages: ReadonlyArray<MessageInput>) =>
      Effect.gen(function*() {
        const order = messages.map((_, i) => i).sort((a, b) => byExternalId(messages[a], messages[b]) || a - b)
        const ids = new Array<number>(messages.length)
        for (const i of order) ids[i] = yield* insertMessage(messages[i])
        return ids
      })

    const insertMessage = (m: MessageInput) =>
      Effect.map(
        sql<{ id: number }>`
            INSERT INTO messages (content, chat_id, author, sent_at, external_id, importance)
            VALUES (${m.content}, ${m.chatId ?? null}, ${m.author ?? null}, ${m.sentAt ?? null}, ${
          m.externalId ?? null
        }, ${m.importance ?? null})
            ON CONFLICT (external_id) DO UPDATE SET
              content = EXCLUDED.content, chat_id = coalesce(EXCLUDED.chat_id, messages.chat_id),
              author = coalesce(EXCLUDED.author, messages.author),
              sent_at = coalesce(EXCLUDED.sent_at, messages.sent_at),
              importance = coalesce(EXCLUDED.importance, messages.importance),
              updated_at = CASE WHEN messages.content IS DISTINCT FROM EXCLUDED.content THEN now()
                ELSE messages.updated_at END
            RETURNING id`,
        (rows) => rows[0].id
      )

    /** Saves a batch of messages (an `external_id` seen before updates that message instead of duplicating it). */
    const ingestMessages = Effect.fn("Extraction.ingestMessages")(function*(request: IngestMessagesRequest) {
      yield* requireBuiltin
      const ids = yield* sql.withTransaction(insertMessages(request.messages)).pipe(retryConflicts)
      yield* afterExtraction({ messageIds: ids })
      return { ids }
    })

    /** Persists topics, atoms (new, or a new version when changed), links and message updates in one transaction. */
    const persist = Effect.fn("Extraction.persist")(function*(input: ExtractionInput) {
      yield* requireBuiltin
      const request = { messageIds: input.messageIds ?? [], topics: input.topics ?? [], atoms: input.atoms ?? [] }
      const result = yield* sql.withTransaction(
        Effect.gen(function*() {
          const messageIds = [...new Set(request.messageIds)]
          if (messageIds.length > 0) {
            const found = yield* sql<{ id: number }>`SELECT id FROM messages WHERE id = ANY(${messageIds}::bigint[])`
            const missing = messageIds.filter((id) => !found.some((f) => f.id === id))
            if (missing.length > 0) {
              return yield* new ExtractionInvalid({
                message: `Unknown message ids: ${missing.join(", ")}`,
                details: { message_ids: missing }
              })
            }
          }
          // Topics: upsert by name; atoms may name a topic not listed, which is created too.
          const topicNames = [
            ...new Set([
              ...request.topics.map((t) => t.name),
              ...request.atoms.flatMap((a) => (a.topic ? [a.topic] : []))
            ])
          ]
          const topicIds = new Map<string, number>()
          // In sorted order: concurrent extractions upsert shared topics in one order (no deadlock between them).
          for (const name of [...topicNames].sort()) {
            const description = request.topics.find((t) => t.name === name)?.description ?? null
            const [row] = yield* sql<{ id: number }>`
              INSERT INTO topics (name, description) VALUES (${name}, ${description})
              ON CONFLICT (name) DO UPDATE
                SET description = coalesce(EXCLUDED.description, topics.description), updated_at = now()
              RETURNING id`
            topicIds.set(name, row.id)
          }
          const defaultTopic = request.topics.length > 0 ? topicIds.get(request.topics[0].name)! : null

          const atomIds: Array<number> = []
          const byTitle = new Map<string, number>()
          for (const atom of request.atoms) {
            const topicId = atom.topic ? topicIds.get(atom.topic)! : defaultTopic
            // The same atom is its id, or else the same type and title in the same topic.
            const existing = atom.id !== undefined
              ? yield* sql<
                { id: number; title: string; content: string; version: number }
              >`SELECT id, title, content, version FROM atoms WHERE id = ${atom.id}`
              : yield* sql<{ id: number; title: string; content: string; version: number }>`
                  SELECT id, title, content, version FROM atoms
                  WHERE type = ${atom.type} AND lower(title) = lower(${atom.title})
                    AND topic_id IS NOT DISTINCT FROM ${topicId}
                  ORDER BY id LIMIT 1`
            if (atom.id !== undefined && existing.length === 0) {
              return yield* new ExtractionInvalid({
                message: `Unknown atom id ${atom.id}`,
                details: { atom_id: atom.id }
              })
            }
            let id: number
            if (existing.length === 0) {
              const [row] = yield* sql<{ id: number }>`
                INSERT INTO atoms (type, title, content, confidence, topic_id)
                VALUES (${atom.type}, ${atom.title}, ${atom.content}, ${atom.confidence ?? null}, ${topicId})
                RETURNING id`
              id = row.id
              yield* sql`INSERT INTO atom_versions (atom_id, version, title, content)
                VALUES (${id}, 1, ${atom.title}, ${atom.content})`
            } else {
              const prev = existing[0]
              id = prev.id
              if (prev.title !== atom.title || prev.content !== atom.content) {
                const version = prev.version + 1
                yield* sql`
                  UPDATE atoms SET title = ${atom.title}, content = ${atom.content}, type = ${atom.type},
                    version = ${version},
                    confidence = coalesce(${
                  atom.confidence ?? null
                }, confidence), topic_id = coalesce(${topicId}, topic_id), updated_at = now()
                  WHERE id = ${id}`
                yield* sql`INSERT INTO atom_versions (atom_id, version, title, content)
                  VALUES (${id}, ${version}, ${atom.title}, ${atom.content})
                  ON CONFLICT DO NOTHING`
              } else {
                yield* sql`UPDATE atoms SET confidence = coalesce(${
                  atom.confidence ?? null
                }, confidence), updated_at = now() WHERE id = ${id}`
              }
            }
            atomIds.push(id)
            byTitle.set(atom.title.toLowerCase(), id)
          }

          for (const [i, atom] of request.atoms.entries()) {
            for (const link of atom.links ?? []) {
              let target: number | undefined
              if (typeof link.to === "number") {
                const rows = yield* sql<{ id: number }>`SELECT id FROM atoms WHERE id = ${link.to}`
                target = rows[0]?.id
              } else {
                target = byTitle.get(link.to.toLowerCase())
                if (target === undefined) {
                  const rows = yield* sql<
                    { id: number }
                  >`SELECT id FROM atoms WHERE lower(title) = lower(${link.to}) ORDER BY id LIMIT 1`
                  target = rows[0]?.id
                }
              }
              if (target === undefined) {
                return yield* new ExtractionInvalid({
                  message: `Link from "${atom.title}" points to an unknown atom: ${JSON.stringify(link.to)}`,
                  details: { atom: atom.title, to: link.to }
                })
              }
              yield* sql`INSERT INTO atom_links (from_atom_id, to_atom_id, relation) VALUES (${
                atomIds[i]
              }, ${target}, ${link.relation})
                ON CONFLICT DO NOTHING`
            }
          }

          if (messageIds.length > 0) {
            yield* sql`UPDATE messages
              SET processed_at = now(), topic_id = coalesce(${defaultTopic}, topic_id), updated_at = now()
              WHERE id = ANY(${messageIds}::bigint[])`
            if (atomIds.length > 0) {
              yield* sql`INSERT INTO atom_messages (atom_id, message_id)
                SELECT a, m FROM unnest(${atomIds}::bigint[]) a CROSS JOIN unnest(${messageIds}::bigint[]) m
                ON CONFLICT DO NOTHING`
            }
            // Processed messages must end up embedded even if they were written without the trigger.
            yield* sql`INSERT INTO ${st.queue} (source, row_id)
              SELECT 'messages', id::text FROM messages WHERE id = ANY(${messageIds}::bigint[]) AND embedding IS NULL
              ON CONFLICT DO NOTHING`
          }
          const result: ExtractionResult = {
            topicIds: topicNames.map((name) => topicIds.get(name)!),
            atomIds: atomIds,
            messageIds: messageIds
          }
          return result
        })
      ).pipe(retryConflicts)
      yield* afterExtraction({ atomIds: result.atomIds, messageIds: result.messageIds })
      return result
    })

    return { persist, ingestMessages, afterExtraction } as const
  })
}) {}
