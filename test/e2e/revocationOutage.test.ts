import { setTimeout as sleep } from "node:timers/promises"
import { Effect, Either } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ApiClient } from "../../src/rpc/client.ts"
import { type Rest, rest } from "../support/AuthClient.ts"
import type { ServerProcess } from "../support/ServerProcess.ts"
import { type RedisServer, startRedis } from "../support/Servers.ts"
import { signUp } from "../support/Tenant.ts"
import { startTestNode, type TestNode } from "../support/TestNode.ts"

/**
 * Longer than every retry budget the nodes have for Redis: the revocation marker's retries (about
 * 25 s), the outbox relay's backoff, the readers' retries.
 */
const OUTAGE_MS = 36_000
/** How long after Redis's return the token is watched on the other nodes. */
const WATCH_MS = 15_000

/** `GET /v1/me` through the typed RPC client: the error's tag, or "ok". */
const meOverRpc = (server: ServerProcess, token: string) =>
  Effect.gen(function* () {
    const client = yield* ApiClient
    const result = yield* Effect.either(client.auth.me())
    return Either.isRight(result) ? "ok" : result.left._tag
  }).pipe(Effect.provide(ApiClient.layer(`${server.url}/rpc`, { accessToken: () => token })), Effect.runPromise)

/**
 * Issue 12 item 9 (R1, R2, S-revocation): three nodes on one Postgres and one Redis; Redis stops for
 * longer than every retry budget and comes back empty. A logout on one node meanwhile answers
 * promptly, and the logged-out access token is refused on the other nodes during the outage and
 * from Redis's return on, on both doors.
 */
describe("a logout during a long Redis outage (issue 12 item 9)", () => {
  let redis: RedisServer
  let node: TestNode
  let nodes: Array<ServerProcess>

  beforeAll(async () => {
    redis = await startRedis()
    node = await startTestNode({ TRUST_PROXY: "1", AUTH_IP_RATE_LIMIT: "1000" }, { redisUrl: redis.url })
    nodes = [node.server, ...(await Promise.all([node.another(), node.another()]))]
  }, 90_000)

  afterAll(async () => {
    await node?.stop()
    await redis?.stop()
  })

  it("answers the logout promptly, and the token stays refused on every node during the outage and after Redis returns empty (issue 12 item 9, R1)", async () => {
    const [a, b, c] = nodes.map((server) => rest(server.url)) as [Rest, Rest, Rest]
    const user = await signUp(a, "outage-logout")
    const bystander = await signUp(a, "outage-bystander")
    for (const api of [a, b, c]) expect((await api.me(user.token)).status).toBe(200)

    await redis.stop()
    const stoppedAt = Date.now()
    const logoutStarted = Date.now()
    const logout = await a.call("POST", "/v1/auth/logout", { token: user.token })
    const logoutMs = Date.now() - logoutStarted
    expect(logout.status).toBe(204)
    expect(logoutMs).toBeLessThan(10_000)

    // During the outage node B asks Postgres: the token is refused, a live one still works.
    // Node C is not asked before Redis is back, so nothing it learnt meanwhile helps it then.
    const during: Array<number> = []
    while (Date.now() - stoppedAt < OUTAGE_MS) {
      during.push((await b.me(user.token)).status)
      await sleep(1_000)
    }
    expect(new Set(during)).toEqual(new Set([401]))
    expect((await b.me(bystander.token)).status).toBe(200)

    await redis.start()
    const returnedAt = Date.now()
    // B is asked all along. C is asked first the moment its own Redis connection is back (its
    // readiness says so): the store answers again, without the marker, and whatever C knows must
    // come from its feed or Postgres, not from an answer Postgres gave it during the outage.
    const after: Array<string> = []
    const ask = async (label: string, server: ServerProcess, api: Rest) => {
      after.push(`${label} http ${(await api.me(user.token)).status}`)
      after.push(`${label} rpc ${await meOverRpc(server, user.token)}`)
    }
    let cReady = false
    while (Date.now() - returnedAt < WATCH_MS) {
      cReady ||= (await fetch(`${nodes[2]!.url}/health/ready`)).status === 200
      await ask("B", nodes[1]!, b)
      if (cReady) await ask("C", nodes[2]!, c)
      await sleep(50)
    }
    expect(cReady).toBe(true)
    expect(after.filter((answer) => answer.startsWith("C")).length).toBeGreaterThan(10)
    // Every answer after the return refused the token: none let it through.
    expect(after.filter((answer) => !/ (401|Unauthorized)$/.test(answer))).toEqual([])
    // The system is whole again: the other user works on every node, and C says it caught up.
    for (const api of [a, b, c]) expect((await api.me(bystander.token)).status).toBe(200)
    expect(nodes[2]!.output()).toContain("revocations: event stream is back; caught up from Postgres")
  }, 110_000)
})
