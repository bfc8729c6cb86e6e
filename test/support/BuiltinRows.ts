import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Option, Redacted } from "effect"
import { type AutoEmbedServices, layer as autoEmbedLayer } from "../../packages/core/src/AutoEmbed.js"
import type { FakeProviderServer } from "../fakes/FakeProviderServer.js"
import { type TierDatabase, tierEnv } from "./Tier.js"

const API_KEY = "sk-cli-test"
const MODEL = "text-embedding-3-small"

/**
 * The configured provider of the CLI tests: OpenAI's wire protocol against the fake server,
 * text-embedding-3-small at 64 dimensions; as the environment of a CLI process on the tier's
 * database, and as the configuration of an in-process autoembed.
 */
export const fakeOpenAIEnv = (fake: FakeProviderServer, where: TierDatabase): Record<string, string> => ({
  ...tierEnv(where),
  EMBEDDING_PROVIDER: "openai",
  OPENAI_API_KEY: API_KEY,
  OPENAI_BASE_URL: fake.openaiBaseUrl,
  EMBEDDING_MODEL: MODEL,
  EMBEDDING_DIMENSIONS: "64"
})

/**
 * An existing database: autoembed installed (built-in sources, the fake OpenAI provider), then
 * `messages` and `atoms` rows written with its triggers off, as if before autoembed was there (no
 * pending state). `then` runs afterwards on the same services (e.g. a backfill).
 */
export const seedBuiltinRows = <E>(
  fake: FakeProviderServer,
  where: TierDatabase,
  rows: { readonly messages: number; readonly atoms: number },
  then: Effect.Effect<void, E, AutoEmbedServices> = Effect.void
) =>
  Effect.runPromise(
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql`SET LOCAL session_replication_role = replica`
        yield* sql`INSERT INTO messages (content)
          SELECT 'cli message number ' || g FROM generate_series(1, ${rows.messages}) g`
        yield* sql`INSERT INTO atoms (type, title, content)
          SELECT 'insight', 'CLI atom ' || g, 'body ' || g FROM generate_series(1, ${rows.atoms}) g`
      }))
      yield* then
    }).pipe(
      Effect.provide(autoEmbedLayer({
        env: false,
        workers: false,
        config: {
          ...(where.url ? { databaseUrl: Option.some(Redacted.make(where.url)) } : { dataDir: where.dataDir }),
          provider: "openai",
          openaiApiKey: Option.some(Redacted.make(API_KEY)),
          openaiBaseUrl: Option.some(fake.openaiBaseUrl),
          model: Option.some(MODEL),
          dimensions: 64
        }
      })),
      Effect.scoped
    )
  )
