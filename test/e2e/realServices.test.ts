import { Effect, Either } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ApiClient } from "../../src/rpc/client.ts"
import { NotReady } from "../../src/rpc/Errors.ts"
import { rest } from "../support/AuthClient.ts"
import { eventually, rpcAt } from "../support/E2e.ts"
import type { ServerProcess } from "../support/ServerProcess.ts"
import { type RedisServer, startRedis } from "../support/Servers.ts"
import { signUp } from "../support/Tenant.ts"
import { startTestNode, type TestNode } from "../support/TestNode.ts"

const ready = async (url: string) => {
  const response = await fetch(`${url}/health/ready`)
  return { status: response.status, body: (await response.json()) as Record<string, unknown> }
}

const rpcReady = (url: string) =>
  rpcAt(url)()(Effect.flatMap(ApiClient, (client) => Effect.either(client.health.ready())))

// A node on real Postgres and its own Redis, which the test stops and starts again.
describe("the server on Postgres and Redis", () => {
  let node: TestNode
  let redis: RedisServer
  let server: ServerProcess

  beforeAll(async () => {
    redis = await startRedis()
    node = await startTestNode({ LOG_FORMAT: "json" }, { redisUrl: redis.url })
    server = node.server
  }, 60_000)

  afterAll(async () => {
    await node?.stop()
    await redis?.stop()
  })

  it("says it runs on postgres + redis, multi-node, and logs JSON lines", () => {
    const lines = server
      .output()
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { message: unknown; logLevel: string })
    expect(lines.map((line) => line.message)).toContainEqual("mode: postgres + redis (multi-node)")
  })

  it("goes 503 naming the event stream when Redis stops, and back to 200 when it returns", async () => {
    expect(await ready(server.url)).toEqual({
      status: 200,
      body: { status: "ready", checks: { database: "up", events: "up" } }
    })

    await redis.stop()
    const down = await eventually(
      () => ready(server.url),
      (r) => r.status === 503
    )
    expect(down.status).toBe(503)
    expect(down.body).toMatchObject({
      _tag: "NotReady",
      code: "not_ready",
      message: "down: events",
      checks: { database: "up", events: "down" }
    })
    const viaRpc = await rpcReady(server.url)
    expect(Either.isLeft(viaRpc) && viaRpc.left).toBeInstanceOf(NotReady)

    await redis.start()
    const up = await eventually(
      () => ready(server.url),
      (r) => r.status === 200
    )
    expect(up.body).toEqual({ status: "ready", checks: { database: "up", events: "up" } })
  }, 60_000)

  it("keeps a session ended before Redis lost its data ended, also on a node started afterwards", async () => {
    const api = rest(server.url)
    const { tokens } = await signUp(api, "redis-loss")
    expect((await api.call("POST", "/v1/auth/logout", { token: tokens.accessToken })).status).toBe(204)
    await redis.stop()
    await redis.start()
    // A node started after the loss (stopped with the others by node.stop()).
    const later = await node.another()
    const reply = await rest(later.url).me(tokens.accessToken)
    expect(reply.status).toBe(401)
    expect(reply.body).toMatchObject({ code: "invalid_token" })
    expect(later.output()).toContain("restored 1 recently ended sessions from Postgres")
    expect((await api.me(tokens.accessToken)).status).toBe(401)
  }, 60_000)
})
