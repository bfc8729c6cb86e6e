/**
 * Vitest global set-up of the PostgreSQL tier through testcontainers: with
 * AUTOEMBED_TEST_CONTAINERS=1 and no DATABASE_URL, the suite starts a pgvector container and runs
 * against it (each test file still makes its own scratch database there). Without a container
 * runtime it says so in one line and the suite runs on the embedded tier: a machine without Docker
 * is not a failure. DATABASE_URL, when given, always wins.
 */
export const PGVECTOR_IMAGE = "pgvector/pgvector:pg16"

export interface ContainerTier {
  readonly url?: string
  readonly stop: () => Promise<void>
  /** The one line the suite prints about its PostgreSQL tier. */
  readonly line: string
}

export const startContainerTier = async (env: NodeJS.ProcessEnv): Promise<ContainerTier | undefined> => {
  if (env.AUTOEMBED_TEST_CONTAINERS !== "1") return undefined
  if (env.DATABASE_URL) {
    return {
      url: env.DATABASE_URL,
      stop: async () => undefined,
      line: "autoembed tests: DATABASE_URL is set; no container started"
    }
  }
  try {
    const { PostgreSqlContainer } = await import("@testcontainers/postgresql")
    const container = await new PostgreSqlContainer(PGVECTOR_IMAGE).start()
    return {
      url: container.getConnectionUri(),
      stop: async () => {
        await container.stop()
      },
      line: `autoembed tests: PostgreSQL tier on a ${PGVECTOR_IMAGE} container ` +
        `at ${container.getHost()}:${container.getPort()}`
    }
  } catch (e) {
    const reason = String((e as Error)?.message ?? e).split("\n")[0]
    return {
      stop: async () => undefined,
      line: `autoembed tests: no container runtime (${reason}); the PostgreSQL tier is skipped, the embedded tier runs`
    }
  }
}

/** Vitest's globalSetup entry: forks started after it inherit DATABASE_URL. */
export default async function setup(): Promise<(() => Promise<void>) | undefined> {
  const tier = await startContainerTier(process.env)
  if (tier === undefined) return undefined
  console.log(tier.line)
  if (tier.url !== undefined) process.env.DATABASE_URL = tier.url
  return tier.stop
}
