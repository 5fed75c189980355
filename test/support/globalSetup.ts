import type { TestProject } from "vitest/node"
import { ensureBinaries, startPostgres, startRedis } from "./Servers.ts"

declare module "vitest" {
  export interface ProvidedContext {
    databaseUrl: string
    redisUrl: string
  }
}

export default async function setup(project: TestProject) {
  const stops: Array<() => Promise<void>> = []
  const teardown = async () => {
    await Promise.allSettled(stops.map((stop) => stop()))
  }
  try {
    let databaseUrl = process.env.TEST_DATABASE_URL
    let redisUrl = process.env.TEST_REDIS_URL
    await ensureBinaries({ postgres: !databaseUrl, redis: !redisUrl })
    if (!databaseUrl) {
      const postgres = await startPostgres()
      stops.push(postgres.stop)
      databaseUrl = postgres.url
    }
    if (!redisUrl) {
      const redis = await startRedis()
      stops.push(redis.stop)
      redisUrl = redis.url
    }
    project.provide("databaseUrl", databaseUrl)
    project.provide("redisUrl", redisUrl)
  } catch (error) {
    await teardown()
    throw error
  }
  return teardown
}
