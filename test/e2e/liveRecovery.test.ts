import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { rest } from "../support/AuthClient.ts"
import { type Frame, openSocket, type TestSocket } from "../support/LiveSocket.ts"
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
      const { ticket } = await org.ticket(member)
      const socket = await openSocket(`${node.server.wsUrl}?ticket=${ticket}`)
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
})
