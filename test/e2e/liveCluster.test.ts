import { afterAll, beforeAll, describe, expect, it } from "vitest"
import WebSocket from "ws"
import { LiveClient } from "../../src/rpc/LiveClient.ts"
import { rest } from "../support/AuthClient.ts"
import type { ServerProcess } from "../support/ServerProcess.ts"
import { createOrganization, signUp, tenant, type User } from "../support/Tenant.ts"
import { startTestNode, type TestNode } from "../support/TestNode.ts"

/**
 * Three server processes on one Postgres and one Redis form one system: clients (LiveClient on
 * `ws`) on every node see changes made through one node, end equal to Postgres, and when a node is
 * killed its clients reconnect to another one and never show a permission revoked meanwhile (R4).
 */
describe("three nodes, one system", () => {
  let node: TestNode
  let nodes: Array<ServerProcess>
  const alive = new Set<number>()
  let owner: User
  let org: ReturnType<typeof tenant>
  const clients: Array<{ member: User; client: LiveClient; target: { node: number } }> = []

  beforeAll(async () => {
    node = await startTestNode({ TRUST_PROXY: "1", AUTH_IP_RATE_LIMIT: "1000" })
    nodes = [node.server, await node.another(), await node.another()]
    for (const i of [0, 1, 2]) alive.add(i)
    const api = rest(nodes[0]!.url)
    owner = await signUp(api, "cluster-owner")
    org = tenant(api, node.dataDir, owner, await createOrganization(api, owner, "cluster"))
    for (const key of ["docs:read", "docs:write", "docs:delete"]) await org.createPermission(key)
  }, 120_000)

  afterAll(async () => {
    for (const { client } of clients) client.close()
    await node?.stop()
  })

  /** Held while set: reconnecting clients wait for their ticket, so they are surely away meanwhile. */
  let gate: Promise<void> | undefined

  /** A ticket from the client's node, or from the next live node if that one is gone (a load balancer's job). */
  const ticketFor = (member: User, target: { node: number }) => async () => {
    if (!alive.has(target.node)) {
      await gate
      target.node = [...alive][0]!
    }
    const server = nodes[target.node]!
    const issued = await org.ticket(member, rest(server.url))
    return { ...issued, url: `${server.wsUrl}?ticket=${issued.ticket}` }
  }

  const truth = async (member: User) =>
    (
      await rest(nodes[0]!.url).call<{ permissions: Array<string>; revision: string }>(
        "GET",
        `${org.path}/users/${member.userId}/permissions`,
        { token: owner.token }
      )
    ).body

  it("pushes changes made through one node to clients on all three, which end equal to Postgres", async () => {
    const editor = await org.createRole("editor", [{ permission: "docs:read", effect: "allow" }])
    for (let i = 0; i < 6; i++) {
      const member = await signUp(rest(nodes[0]!.url), `cluster-m${i}`)
      await org.join(member)
      await org.assign({ userId: member.userId, roleId: editor.role.id })
      const target = { node: i % 3 }
      const client = await LiveClient.connect({
        getTicket: ticketFor(member, target),
        WebSocket,
        backoff: { initialMs: 50, maxMs: 500 }
      })
      clients.push({ member, client, target })
    }
    for (const { client } of clients) expect(client.can("docs:read")).toBe(true)

    const granted = await org.setGrants(editor.role.id, [
      { permission: "docs:read", effect: "allow" },
      { permission: "docs:write", effect: "allow" }
    ])
    const removedFrom = clients[4]!
    const [assignment] = (
      await rest(nodes[0]!.url).call<Array<{ id: string }>>(
        "GET",
        `${org.path}/assignments?userId=${removedFrom.member.userId}`,
        { token: owner.token }
      )
    ).body
    const last = await org.unassign(assignment!.id)
    expect(BigInt(last)).toBeGreaterThan(BigInt(granted))

    for (const { member, client } of clients) {
      await client.awaitRevision(last)
      const expected = await truth(member)
      expect([...client.permissions].sort()).toEqual([...expected.permissions].sort())
    }
    expect(clients[0]!.client.can("docs:write")).toBe(true)
    expect(removedFrom.client.can("docs:read")).toBe(false)
  }, 60_000)

  it("moves the clients of a killed node to the others, never showing a permission revoked meanwhile (R4)", async () => {
    const victims = clients.filter(({ target }) => target.node === 2)
    expect(victims.length).toBe(2)
    let open = () => {}
    gate = new Promise<void>((resolve) => {
      open = resolve
    })
    alive.delete(2)
    await nodes[2]!.stop("SIGKILL")
    const editorId = (await org.roleIds()).editor!
    const revoked = await org.setGrants(editorId, [{ permission: "docs:read", effect: "allow" }])
    // docs:write is revoked while the victims are away: from now on they must never show it.
    for (const { client } of victims) expect(client.connected).toBe(false)
    let shown = 0
    const watch = setInterval(() => {
      for (const { client } of victims) if (client.can("docs:write")) shown += 1
    }, 2)
    open()
    try {
      for (const { member, client } of clients) {
        await client.awaitRevision(revoked)
        const expected = await truth(member)
        expect([...client.permissions].sort()).toEqual([...expected.permissions].sort())
      }
      for (const { client, target } of victims) {
        expect(client.connected).toBe(true)
        expect(target.node).not.toBe(2)
      }
    } finally {
      clearInterval(watch)
    }
    expect(shown).toBe(0)
    for (const { client } of clients) expect(client.can("docs:write")).toBe(false)
  }, 60_000)
})
