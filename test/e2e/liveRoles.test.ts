/**
 * Live role names stay current (issue 12, item 11): an organization-wide assignment that also
 * changes permissions reaches the client as one `permissions` frame carrying the new `roles`, so
 * `LiveClient.roles` follows without a new `hello`. Real Postgres and Redis, two server processes,
 * LiveClient on `ws`; assignments made over HTTP and through the RPC client.
 */
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import WebSocket from "ws"
import { ApiClient } from "../../src/rpc/client.ts"
import { LiveClient } from "../../src/rpc/LiveClient.ts"
import { rest } from "../support/AuthClient.ts"
import { rpcAt } from "../support/E2e.ts"
import { liveSession } from "../support/LiveSocket.ts"
import type { ServerProcess } from "../support/ServerProcess.ts"
import { createOrganization, signUp, tenant, type User } from "../support/Tenant.ts"
import { startTestNode, type TestNode } from "../support/TestNode.ts"

const until = async (condition: () => boolean, what: string, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describe("live role names follow assignments", () => {
  let node: TestNode
  let a: ServerProcess
  let b: ServerProcess
  let api: ReturnType<typeof rest>
  let owner: User
  let org: ReturnType<typeof tenant>
  const clients: Array<LiveClient> = []

  beforeAll(async () => {
    node = await startTestNode({ TRUST_PROXY: "1", AUTH_IP_RATE_LIMIT: "1000" })
    a = node.server
    b = await node.another()
    api = rest(a.url)
    owner = await signUp(api, "roles-owner")
    org = tenant(api, node.dataDir, owner, await createOrganization(api, owner, "roles"))
    for (const key of ["docs:read", "docs:write"]) await org.createPermission(key)
  }, 120_000)

  afterAll(async () => {
    for (const client of clients) client.close()
    await node?.stop()
  })

  const connect = async (member: User) => {
    const client = await LiveClient.connect({
      getTicket: async () => {
        const issued = await org.ticket(member, rest(b.url))
        return { ...issued, url: `${b.wsUrl}?ticket=${issued.ticket}` }
      },
      WebSocket
    })
    clients.push(client)
    return client
  }

  it("an org-wide assignment that also adds permissions updates LiveClient.roles, 10 of 10, over HTTP and RPC", async () => {
    const member = await signUp(api, "roles-member")
    await org.join(member, ["member"])
    const client = await connect(member)
    expect(client.roles).toEqual(["member"])
    const assignOverRpc = rpcAt(a.url)(owner.token)
    const names: Array<string> = []
    for (let i = 0; i < 10; i++) {
      const name = `role-${i}-${Date.now()}`
      const permission = i % 2 === 0 ? "docs:read" : "docs:write"
      const { role } = await org.createRole(name, [{ permission, effect: "allow" }])
      if (i % 2 === 0) {
        await org.assign({ userId: member.userId, roleId: role.id })
      } else {
        await assignOverRpc(
          Effect.flatMap(ApiClient, (c) =>
            c.assignments.create({ organizationId: org.organizationId, userId: member.userId, roleId: role.id })
          )
        )
      }
      names.push(name)
      const expected = [...names, "member"].sort()
      await until(() => client.roles.join() === expected.join(), `roles after assignment ${i}: ${expected}`)
      expect(client.can(permission)).toBe(true)
    }
    expect(client.status).toBe("open")
  })

  it("the permissions frame itself carries the new roles when keys change with them", async () => {
    const member = await signUp(api, "roles-raw")
    await org.join(member, ["member"])
    const socket = await liveSession(async () => `${b.wsUrl}?ticket=${(await org.ticket(member, rest(b.url))).ticket}`)
    expect(await socket.next("hello")).toMatchObject({ roles: ["member"] })
    const name = `raw-writer-${Date.now()}`
    const { role } = await org.createRole(name, [{ permission: "docs:write", effect: "allow" }])
    const given = await org.assign({ userId: member.userId, roleId: role.id })
    const frame = await socket.next("permissions")
    expect(frame).toMatchObject({ revision: given.revision, added: ["docs:write"] })
    expect(frame.roles).toEqual(["member", name].sort())
    const removed = await org.unassign(given.assignment.id)
    expect(await socket.next("permissions")).toMatchObject({
      revision: removed,
      removed: ["docs:write"],
      roles: ["member"]
    })
    socket.close()
  })
})
