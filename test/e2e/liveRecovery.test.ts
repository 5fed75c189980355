import { Redis } from "ioredis"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { rest } from "../support/AuthClient.ts"
import { type Frame, liveSession, type TestSocket } from "../support/LiveSocket.ts"
import { type RedisServer, startRedis } from "../support/Servers.ts"
import { createOrganization, signUp, tenant, type User } from "../support/Tenant.ts"
import { startTestNode, type TestNode } from "../support/TestNode.ts"

/** The permission set a client holds after applying every frame it received, in order. */
const held = (frames: ReadonlyArray<Frame>) => {
  const set = new Set<string>()
  let revision = 0n
  for (const frame of frames) {
    if (frame.type === "hello") {
      set.clear()
      for (const key of frame.permissions as Array<string>) set.add(key)
    }
    if (frame.type === "permissions") {
      for (const key of frame.added as Array<string>) set.add(key)
      for (const key of frame.removed as Array<string>) set.delete(key)
    }
    if (frame.type === "hello" || frame.type === "permissions") {
      const next = BigInt(frame.revision as string)
      expect(next).toBeGreaterThanOrEqual(revision)
      revision = next
    }
  }
  return { permissions: [...set].sort(), revision: revision.toString() }
}

const eventually = async (check: () => Promise<boolean>, timeoutMs = 20_000) => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return true
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  return false
}

/**
 * R1 and R2 for live sessions: Redis stops during a burst of permission changes and comes back
 * empty; every live session ends equal to Postgres, and the node says it resynchronised.
 */
describe("live sessions across a Redis outage", () => {
  let redis: RedisServer
  let node: TestNode
  let api: ReturnType<typeof rest>
  let owner: User
  const sockets: Array<TestSocket> = []

  beforeAll(async () => {
    redis = await startRedis()
    node = await startTestNode({ TRUST_PROXY: "1", AUTH_IP_RATE_LIMIT: "1000" }, { redisUrl: redis.url })
    api = rest(node.server.url)
    owner = await signUp(api, "recovery-owner")
  }, 60_000)

  afterAll(async () => {
    for (const socket of sockets) socket.close()
    await node?.stop()
    await redis?.stop()
  })

  it("ends every live session equal to Postgres after changes made while Redis was down (R1, R2)", async () => {
    const org = tenant(api, node.dataDir, owner, await createOrganization(api, owner, "recovery"))
    const keys = ["a", "b", "c", "d", "e"].map((k) => `docs.${k}:read`)
    for (const key of keys) await org.createPermission(key)
    const members = [await signUp(api, "recovery-m1"), await signUp(api, "recovery-m2")]
    for (const member of members) await org.join(member)
    const roles = []
    for (const [i, key] of keys.entries())
      roles.push((await org.createRole(`r${i}`, [{ permission: key, effect: "allow" }])).role.id)
    for (const member of members) {
      const socket = await liveSession(async () => `${node.server.wsUrl}?ticket=${(await org.ticket(member)).ticket}`)
      await socket.next("hello")
      sockets.push(socket)
    }

    await redis.stop()
    // A burst of changes while the event stream is gone: every write commits to Postgres.
    const assignments: Array<{ id: string; keep: boolean }> = []
    for (let round = 0; round < 4; round++) {
      for (const [m, member] of members.entries()) {
        const roleId = roles[(round + m) % roles.length]!
        const created = await org.assign({ userId: member.userId, roleId })
        assignments.push({ id: created.assignment.id, keep: round % 2 === 1 })
      }
    }
    for (const assignment of assignments) if (!assignment.keep) await org.unassign(assignment.id)
    await redis.start()

    for (const [i, member] of members.entries()) {
      const truth = async () =>
        (
          await api.call<{ permissions: Array<string>; revision: string }>(
            "GET",
            `${org.path}/users/${member.userId}/permissions`,
            { token: owner.token }
          )
        ).body
      const converged = await eventually(async () => {
        const expected = await truth()
        const state = held(sockets[i]!.frames)
        return (
          state.revision === expected.revision && state.permissions.join() === [...expected.permissions].sort().join()
        )
      })
      const expected = await truth()
      expect(held(sockets[i]!.frames)).toEqual({
        permissions: [...expected.permissions].sort(),
        revision: expected.revision
      })
      expect(converged).toBe(true)
    }
    expect(node.server.output()).toMatch(/live: .*(unreachable|gap).*resynchronising/)
  }, 90_000)

  it("ignores a replayed event: no frame for an event the session already applied (R7)", async () => {
    const owner = await signUp(api, "replay-owner")
    const org = tenant(api, node.dataDir, owner, await createOrganization(api, owner, "replay"))
    await org.createPermission("docs:read")
    const member = await signUp(api, "replay-member")
    await org.join(member)
    const role = await org.createRole("reader", [{ permission: "docs:read", effect: "allow" }])
    const socket = await liveSession(async () => `${node.server.wsUrl}?ticket=${(await org.ticket(member)).ticket}`)
    await socket.next("hello")
    await org.assign({ userId: member.userId, roleId: role.role.id })
    await socket.next("permissions")
    const framesBefore = socket.frames.length

    // Append every event of the stream again, as a relay that published twice would.
    const redis = new Redis(node.env.REDIS_URL!)
    try {
      const key = `${node.env.REDIS_KEY_PREFIX}permission-events`
      const entries = await redis.xrange(key, "-", "+")
      expect(entries.length).toBeGreaterThan(0)
      for (const [, fields] of entries) await redis.xadd(key, "*", ...fields)
    } finally {
      redis.disconnect()
    }
    await new Promise((resolve) => setTimeout(resolve, 1_000))
    expect(socket.frames.slice(framesBefore)).toEqual([])
    socket.send({ type: "check", id: "after", permission: "docs:read" })
    expect(await socket.next("check.result")).toMatchObject({ allowed: true })
    socket.close()
  }, 30_000)
})

describe("live sessions and their session's lifetime", () => {
  let node: TestNode
  let api: ReturnType<typeof rest>

  beforeAll(async () => {
    node = await startTestNode({ TRUST_PROXY: "1", AUTH_IP_RATE_LIMIT: "1000", REFRESH_ABSOLUTE_TTL: "4 seconds" })
    api = rest(node.server.url)
  }, 60_000)

  afterAll(() => node?.stop())

  it("closes the socket with revoked session_expired when the session reaches its absolute expiry (S38)", async () => {
    const owner = await signUp(api, "expiry-owner")
    const org = tenant(api, node.dataDir, owner, await createOrganization(api, owner, "expiry"))
    const socket = await liveSession(async () => `${node.server.wsUrl}?ticket=${(await org.ticket(owner)).ticket}`)
    await socket.next("hello")
    const revoked = await socket.next("revoked", 8_000)
    expect(revoked).toEqual({ type: "revoked", reason: "session_expired" })
    expect((await socket.closed).code).toBe(4001)
  }, 30_000)
})
