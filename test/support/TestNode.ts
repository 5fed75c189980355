import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { inject } from "vitest"
import { type ServerProcess, startServer } from "./ServerProcess.ts"
import { createTestDatabase, type TestDatabase, testRedisPrefix } from "./TestDatabase.ts"

export interface TestNode {
  readonly database: TestDatabase
  readonly dataDir: string
  /** The environment the node runs with; start more nodes of the same cluster with it. */
  readonly env: Record<string, string>
  readonly server: ServerProcess
  /** Starts another node sharing this one's database, Redis and settings. */
  readonly another: () => Promise<ServerProcess>
  /** Stops every node it started and removes the database and the data directory. */
  readonly stop: () => Promise<void>
}

/**
 * A server process on its own throwaway database, the shared test Redis (or `redisUrl`) under a
 * fresh key prefix, and a fresh DATA_DIR, with `env` added to its settings.
 */
export const startTestNode = async (env: Record<string, string> = {}, options: { redisUrl?: string } = {}) => {
  const database = await createTestDatabase()
  const dataDir = mkdtempSync(join(tmpdir(), "lps-node-"))
  const fullEnv = {
    DATABASE_URL: database.url,
    REDIS_URL: options.redisUrl ?? inject("redisUrl"),
    REDIS_KEY_PREFIX: testRedisPrefix(),
    // Nodes sharing Redis are one cluster: one issuer for all (the server refuses REDIS_URL without it).
    JWT_ISSUER: "http://lps.test",
    DATA_DIR: dataDir,
    ...env
  }
  const servers: Array<ServerProcess> = []
  const another = async () => {
    const server = await startServer(fullEnv)
    servers.push(server)
    return server
  }
  const server = await another()
  return {
    database,
    dataDir,
    env: fullEnv,
    server,
    another,
    stop: async () => {
      for (const node of servers) await node.stop()
      await database.drop()
      rmSync(dataDir, { recursive: true, force: true })
    }
  } satisfies TestNode
}
