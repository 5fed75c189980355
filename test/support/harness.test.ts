import { createConnection } from "node:net"
import { Redis } from "ioredis"
import { afterAll, describe, expect, it } from "vitest"
import { type RedisServer, startRedis } from "./Servers.ts"
import { createTestDatabase, query, type TestDatabase, testRedisPrefix } from "./TestDatabase.ts"

const connectError = (port: number) =>
  new Promise<string | undefined>((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resolve(undefined)
    })
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code))
  })

const withRedis = async <A>(url: string, f: (redis: Redis) => Promise<A>) => {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => null })
  try {
    return await f(redis)
  } finally {
    redis.disconnect()
  }
}

describe("test databases", () => {
  const databases: Array<TestDatabase> = []
  afterAll(() => Promise.all(databases.map((db) => db.drop())))

  it("are distinct and usable", async () => {
    const a = await createTestDatabase()
    databases.push(a)
    const b = await createTestDatabase()
    databases.push(b)
    expect(a.url).not.toBe(b.url)

    await query(a.url, "CREATE TABLE only_in_a (id int PRIMARY KEY)")
    await query(a.url, "INSERT INTO only_in_a VALUES ($1)", [1])
    expect(await query(a.url, "SELECT id FROM only_in_a")).toEqual([{ id: 1 }])
    expect(await query(b.url, "SELECT to_regclass('only_in_a') AS t")).toEqual([{ t: null }])
  })

  it("drop removes the database", async () => {
    const db = await createTestDatabase()
    await query(db.url, "SELECT 1")
    await db.drop()
    const name = new URL(db.url).pathname.slice(1)
    const admin = new URL(db.url)
    admin.pathname = "/postgres"
    expect(await query(admin.href, "SELECT 1 FROM pg_database WHERE datname = $1", [name])).toEqual([])
  })
})

describe("redis prefixes", () => {
  it("are unique", () => {
    const a = testRedisPrefix()
    expect(a).toMatch(/^t:[0-9a-f]+:$/)
    expect(testRedisPrefix()).not.toBe(a)
  })
})

describe("startRedis", () => {
  let server: RedisServer | undefined
  afterAll(() => server?.stop())

  it("answers, goes down, and comes back empty on the same port", async () => {
    server = await startRedis()
    const { port, url } = server

    await withRedis(url, async (redis) => {
      expect(await redis.ping()).toBe("PONG")
      await redis.set("survives", "no")
    })

    await server.stop()
    expect(await connectError(port)).toBe("ECONNREFUSED")

    await server.start()
    expect(server.port).toBe(port)
    await withRedis(url, async (redis) => {
      expect(await redis.ping()).toBe("PONG")
      expect(await redis.get("survives")).toBeNull()
      expect(await redis.dbsize()).toBe(0)
    })
  })
})
