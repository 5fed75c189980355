import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { LiveLimits } from "../../src/rpc/LiveProtocol.ts"
import { rest, STRONG_PASSWORD, type TokenPairBody } from "../support/AuthClient.ts"
import { liveSession, type TestSocket, upgradeStatus } from "../support/LiveSocket.ts"
import type { ServerProcess } from "../support/ServerProcess.ts"
import { createOrganization, signUp, tenant, type User } from "../support/Tenant.ts"
import { startTestNode, type TestNode } from "../support/TestNode.ts"

const ORIGIN = "https://app.example.com"
const ADMIN = { email: `live-admin-${Date.now()}@example.com`, password: "live admin passphrase" }

/**
 * Live sessions through two server processes on one Postgres and one Redis, with raw WebSockets
 * (`ws`) as a browser would hold them: tickets, refusals at the upgrade, hello, diffs pushed from a
 * change made on the other node, checks and awaits over the socket, revocation.
 */
describe("live sessions, end to end on two nodes", () => {
  let node: TestNode
  let a: ServerProcess
  let b: ServerProcess
  let apiA: ReturnType<typeof rest>
  let owner: User
  let org: ReturnType<typeof tenant>
  const sockets: Array<TestSocket> = []

  /** Opens a live socket on `server` for `user` with a fresh ticket from `server`. */
  const connect = async (user: User, server: ServerProcess = b, query = "") => {
    const socket = await liveSession(
      async () => `${server.wsUrl}?ticket=${(await org.ticket(user, rest(server.url))).ticket}${query}`,
      { origin: ORIGIN }
    )
    sockets.push(socket)
    return socket
  }

  beforeAll(async () => {
    node = await startTestNode({
      TRUST_PROXY: "1",
      AUTH_IP_RATE_LIMIT: "1000",
      ALLOWED_ORIGINS: ORIGIN,
      MAX_SOCKETS_PER_USER: "3",
      ADMIN_EMAIL: ADMIN.email,
      ADMIN_PASSWORD: ADMIN.password
    })
    a = node.server
    b = await node.another()
    apiA = rest(a.url)
    owner = await signUp(apiA, "live-owner")
    org = tenant(apiA, node.dataDir, owner, await createOrganization(apiA, owner, "live"))
    await org.createPermission("docs:read")
    await org.createPermission("docs:write")
  }, 90_000)

  afterAll(async () => {
    for (const socket of sockets) socket.close()
    await node?.stop()
  })

  it("issues single-use tickets to members only, and refuses bad upgrades before opening", async () => {
    const member = await signUp(apiA, "live-ticket")
    const outsider = await signUp(apiA, "live-outsider")
    await org.join(member, ["member"])
    const issued = await org.ticket(member)
    expect(issued.expiresIn).toBe(30)
    expect(issued.url).toMatch(new RegExp(`/ws\\?ticket=${issued.ticket}$`))
    const refused = await apiA.call("POST", "/v1/realtime/tickets", {
      token: outsider.token,
      body: { organizationId: org.organizationId }
    })
    expect(refused.status).toBe(404)
    const anonymous = await apiA.call("POST", "/v1/realtime/tickets", { body: { organizationId: org.organizationId } })
    expect(anonymous.status).toBe(401)

    // A foreign Origin is refused even with a good ticket, which stays unused.
    expect(await upgradeStatus(`${b.wsUrl}?ticket=${issued.ticket}`, { origin: "https://evil.example.com" })).toBe(403)
    expect(await upgradeStatus(`${b.wsUrl}?ticket=${issued.ticket}`, { origin: `${ORIGIN}.evil.com` })).toBe(403)
    expect(await upgradeStatus(`${b.wsUrl}`, { origin: ORIGIN })).toBe(401)
    expect(await upgradeStatus(`${b.wsUrl}?ticket=not-a-ticket`, { origin: ORIGIN })).toBe(401)
    // Issued on A, used on B: one system. Used once, then refused.
    expect(await upgradeStatus(`${b.wsUrl}?ticket=${issued.ticket}`, { origin: ORIGIN })).toBe(101)
    expect(await upgradeStatus(`${b.wsUrl}?ticket=${issued.ticket}`, { origin: ORIGIN })).toBe(401)
    // No Origin header (a service, not a browser): allowed with a valid ticket.
    const fresh = await org.ticket(member)
    expect(await upgradeStatus(`${a.wsUrl}?ticket=${fresh.ticket}`)).toBe(101)
  })

  it("says hello with the set, pushes a diff for a change made on the other node, and answers checks and awaits", async () => {
    const member = await signUp(apiA, "live-member")
    await org.join(member, ["member"])
    const socket = await connect(member, b)
    const hello = await socket.next("hello")
    expect(hello).toMatchObject({
      userId: member.userId,
      sessionId: member.sessionId,
      organizationId: org.organizationId,
      roles: ["member"]
    })
    expect(hello.permissions).toEqual(expect.arrayContaining(["org:read", "members:read", "roles:read"]))
    expect(hello.permissions).not.toContain("docs:read")

    const reader = await org.createRole(`reader-${Date.now()}`, [{ permission: "docs:read", effect: "allow" }])
    const given = await org.assign({ userId: member.userId, roleId: reader.role.id })
    const diff = await socket.next("permissions")
    expect(diff).toMatchObject({ revision: given.revision, added: ["docs:read"], removed: [] })

    socket.send({ type: "check", id: "c1", permission: "docs:read" })
    expect(await socket.next("check.result")).toMatchObject({ id: "c1", allowed: true })
    socket.send({ type: "check", id: "c2", permission: "docs:write", resource: { type: "doc", id: "1" } })
    expect(await socket.next("check.result")).toMatchObject({ id: "c2", allowed: false })

    // A grant change on the role reaches the session through the role index.
    const regranted = await org.setGrants(reader.role.id, [
      { permission: "docs:read", effect: "allow" },
      { permission: "docs:write", effect: "allow" }
    ])
    expect(await socket.next("permissions")).toMatchObject({ revision: regranted, added: ["docs:write"], removed: [] })

    const removed = await org.unassign(given.assignment.id)
    expect(await socket.next("permissions")).toMatchObject({
      revision: removed,
      added: [],
      removed: ["docs:read", "docs:write"]
    })
    // The very next check denies (S32).
    socket.send({ type: "check", id: "c3", permission: "docs:read" })
    expect(await socket.next("check.result")).toMatchObject({ id: "c3", allowed: false })

    socket.send({ type: "await", id: "w1", revision: removed })
    expect(await socket.next("awaited")).toMatchObject({ id: "w1", revision: removed })
    socket.send({ type: "await", id: "w2", revision: "999999999" })
    expect(await socket.next("error", 5_000)).toMatchObject({ id: "w2", code: "revision_not_reached" })
    socket.send({ type: "ping" })
    expect(await socket.next("pong")).toEqual({ type: "pong" })
  })

  it("lists a deny assigned on one resource in scopedDenied, as checks over the socket and HTTP answer", async () => {
    const member = await signUp(apiA, "live-deny")
    await org.join(member, ["member"])
    const socket = await connect(member)
    const hello = await socket.next("hello")
    expect(hello.permissions).toContain("members:read")
    expect(hello.scopedDenied).toEqual({})

    const { role } = await org.createRole("no-members-on-42", [{ permission: "members:read", effect: "deny" }])
    const { revision } = await org.assign({
      userId: member.userId,
      roleId: role.id,
      scope: { type: "project", id: "42" }
    })
    expect(await socket.next("permissions")).toEqual({
      type: "permissions",
      revision,
      added: [],
      removed: [],
      scopedDeniedAdded: { "project/42": ["members:read"] }
    })
    socket.send({ type: "check", id: "on-42", permission: "members:read", resource: { type: "project", id: "42" } })
    expect(await socket.next("check.result")).toMatchObject({ id: "on-42", allowed: false })
    socket.send({ type: "check", id: "on-7", permission: "members:read", resource: { type: "project", id: "7" } })
    expect(await socket.next("check.result")).toMatchObject({ id: "on-7", allowed: true })
    const effective = await apiA.call<{ scopedDenied: Record<string, Array<string>> }>(
      "GET",
      `${org.path}/users/${member.userId}/permissions`,
      { token: member.token }
    )
    expect(effective.body.scopedDenied).toEqual({ "project/42": ["members:read"] })
  })

  it("answers malformed and binary frames with an error, and closes on an oversized frame", async () => {
    const member = await signUp(apiA, "live-bad")
    await org.join(member)
    const socket = await connect(member, a)
    await socket.next("hello")
    socket.send("{not json")
    expect(await socket.next("error")).toMatchObject({ code: "invalid_message" })
    socket.send({ type: "check", id: "x" })
    expect(await socket.next("error")).toMatchObject({ code: "invalid_message" })
    socket.ws.send(Buffer.from([1, 2, 3]))
    expect(await socket.next("error")).toMatchObject({ code: "invalid_message" })
    socket.send({ type: "ping" })
    expect(await socket.next("pong")).toEqual({ type: "pong" })
    socket.send("x".repeat(17 * 1024))
    const closed = await socket.closed
    expect(closed.code).toBe(1009)
  })

  it("rate limits a flooding client and closes it if it keeps on", async () => {
    const member = await signUp(apiA, "live-flood")
    await org.join(member)
    const socket = await connect(member, a)
    await socket.next("hello")
    for (let i = 0; i < 400; i++) socket.send({ type: "ping" })
    expect(await socket.next("error")).toMatchObject({ code: "rate_limited" })
    expect((await socket.closed).code).toBe(4003)
  })

  it("ends the session's socket with revoked first, within a second, on logout and on removal from the organization", async () => {
    const member = await signUp(apiA, "live-logout")
    await org.join(member)
    const socket = await connect(member, b)
    await socket.next("hello")
    const started = Date.now()
    expect((await apiA.call("POST", "/v1/auth/logout", { token: member.token })).status).toBe(204)
    expect(await socket.next("revoked")).toEqual({ type: "revoked", reason: "logout" })
    expect((await socket.closed).code).toBe(4001)
    expect(Date.now() - started).toBeLessThan(1_000)

    const removedMember = await signUp(apiA, "live-removed")
    await org.join(removedMember)
    const other = await connect(removedMember, b)
    await other.next("hello")
    const removedAt = Date.now()
    const removed = await apiA.call("DELETE", `${org.path}/members/${removedMember.userId}`, { token: owner.token })
    expect(removed.status).toBe(200)
    expect(await other.next("revoked")).toEqual({ type: "revoked", reason: "member_removed" })
    expect((await other.closed).code).toBe(4001)
    expect(Date.now() - removedAt).toBeLessThan(1_000)
  })

  it("answers a resume at a revision the organization never reached with hello at its current revision", async () => {
    const member = await signUp(apiA, "live-ahead")
    await org.join(member)
    const socket = await connect(member, b, "&revision=999999999999")
    // The server waits briefly for the revision, then answers with the truth: never a refusal, never 1001.
    const hello = await socket.next("hello", 10_000)
    const truth = (
      await apiA.call<{ permissions: Array<string>; revision: string }>(
        "GET",
        `${org.path}/users/${member.userId}/permissions`,
        { token: owner.token }
      )
    ).body
    expect(hello.revision).toBe(truth.revision)
    expect([...(hello.permissions as Array<string>)].sort()).toEqual([...truth.permissions].sort())
    socket.send({ type: "ping" })
    expect(await socket.next("pong")).toEqual({ type: "pong" })
    expect(socket.frames.filter((frame) => frame.type === "error")).toEqual([])
    // Diffs follow from the revision of that hello.
    const reader = await org.createRole(`ahead-${Date.now()}`, [{ permission: "docs:read", effect: "allow" }])
    const given = await org.assign({ userId: member.userId, roleId: reader.role.id })
    expect(await socket.next("permissions")).toMatchObject({ revision: given.revision, added: ["docs:read"] })
  })

  it("reports its sessions in /metrics and forgets a closed socket", async () => {
    const member = await signUp(apiA, "live-metrics")
    await org.join(member)
    const metrics = async () => {
      const text = await (await fetch(b.wsUrl.replace("ws://", "http://").replace("/ws", "/metrics"))).text()
      return Number(text.match(/^live_sessions (\d+)$/m)?.[1])
    }
    const before = await metrics()
    const socket = await connect(member, b)
    await socket.next("hello")
    expect(await metrics()).toBe(before + 1)
    socket.close()
    await socket.closed
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(await metrics()).toBe(before)
  })

  it("refuses a user's socket beyond the per-node cap with 429", async () => {
    const member = await signUp(apiA, "live-cap")
    await org.join(member)
    for (let i = 0; i < 3; i++) await (await connect(member, a)).next("hello")
    const { ticket } = await org.ticket(member)
    expect(await upgradeStatus(`${a.wsUrl}?ticket=${ticket}`, { origin: ORIGIN })).toBe(429)
  })

  it("ends sockets on every node when an admin freezes the organization or disables the user, and on a password change", async () => {
    const admin = (await apiA.login(ADMIN.email, ADMIN.password)).body as TokenPairBody
    const frozenOwner = await signUp(apiA, "live-frozen-owner")
    const frozenOrg = tenant(apiA, node.dataDir, frozenOwner, await createOrganization(apiA, frozenOwner, "frozen"))
    const onA = await liveSession(async () => `${a.wsUrl}?ticket=${(await frozenOrg.ticket(frozenOwner)).ticket}`)
    const onB = await liveSession(async () => `${b.wsUrl}?ticket=${(await frozenOrg.ticket(frozenOwner)).ticket}`)
    sockets.push(onA, onB)
    await onA.next("hello")
    await onB.next("hello")
    const frozenAt = Date.now()
    const frozen = await apiA.call("POST", `/v1/admin/orgs/${frozenOrg.organizationId}/freeze`, {
      token: admin.accessToken
    })
    expect(frozen.status).toBe(200)
    for (const socket of [onA, onB]) {
      expect(await socket.next("revoked")).toEqual({ type: "revoked", reason: "organization_frozen" })
      expect((await socket.closed).code).toBe(4001)
    }
    expect(Date.now() - frozenAt).toBeLessThan(1_000)

    const disabled = await signUp(apiA, "live-disabled")
    await org.join(disabled)
    const disabledSocket = await connect(disabled, b)
    await disabledSocket.next("hello")
    expect(
      (await apiA.call("POST", `/v1/admin/users/${disabled.userId}/disable`, { token: admin.accessToken })).status
    ).toBe(200)
    expect(await disabledSocket.next("revoked")).toEqual({ type: "revoked", reason: "user_disabled" })

    // A password change ends the user's other sessions, and their sockets.
    const changer = await signUp(apiA, "live-password")
    await org.join(changer)
    const otherSession = (await apiA.login(changer.email, STRONG_PASSWORD)).body as TokenPairBody
    const otherSocket = await connect({ ...changer, token: otherSession.accessToken }, b)
    await otherSocket.next("hello")
    const ownSocket = await connect(changer, a)
    await ownSocket.next("hello")
    const changed = await apiA.call("POST", "/v1/auth/password/change", {
      token: changer.token,
      body: { currentPassword: STRONG_PASSWORD, newPassword: "another strong passphrase here" }
    })
    expect(changed.status).toBe(204)
    expect(await otherSocket.next("revoked")).toEqual({ type: "revoked", reason: "password_changed" })
    ownSocket.send({ type: "ping" })
    expect(await ownSocket.next("pong")).toEqual({ type: "pong" })
  })

  it("coalesces a burst of changes to one role: at most one recomputation per 100 ms per session, ending at Postgres' state", async () => {
    // An organization of its own: no other session of this node is touched by the burst.
    const burstOrg = tenant(apiA, node.dataDir, owner, await createOrganization(apiA, owner, "burst"))
    await burstOrg.createPermission("docs:read")
    const burstRole = await burstOrg.createRole(`burst-${Date.now()}`, [])
    const members = [await signUp(apiA, "live-burst-1"), await signUp(apiA, "live-burst-2")]
    const socketsHere: Array<TestSocket> = []
    for (const member of members) {
      await burstOrg.join(member)
      await burstOrg.assign({ userId: member.userId, roleId: burstRole.role.id })
      const socket = await liveSession(
        async () => `${b.wsUrl}?ticket=${(await burstOrg.ticket(member, rest(b.url))).ticket}`,
        { origin: ORIGIN }
      )
      sockets.push(socket)
      await socket.next("hello")
      socketsHere.push(socket)
    }
    const metrics = async () => {
      const text = await (await fetch(b.wsUrl.replace("ws://", "http://").replace("/ws", "/metrics"))).text()
      return Number(text.match(/^live_recomputations_total (\d+)$/m)?.[1])
    }
    // The window opens before the first count and closes after the last one: every recomputation
    // counted happened inside it.
    const started = Date.now()
    const before = await metrics()
    const changes = 200
    const revisions: Array<string> = []
    let next = 0
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        while (next < changes) {
          const i = next++
          revisions.push(
            await burstOrg.setGrants(
              burstRole.role.id,
              i % 2 === 0 ? [{ permission: "docs:read", effect: "allow" }] : []
            )
          )
        }
      })
    )
    const last = revisions
      .map(BigInt)
      .reduce((x, y) => (x > y ? x : y))
      .toString()
    for (const socket of socketsHere) {
      socket.send({ type: "await", id: "end", revision: last })
      await socket.next("awaited", 10_000)
    }
    const recomputed = (await metrics()) - before
    const elapsed = Date.now() - started
    // The product's rule, however slowly the writes went: per session at most one recomputation
    // per interval over the window (the first change at once, so one more), plus one for the
    // `await` that may have found it behind.
    const perSession = Math.floor(elapsed / LiveLimits.recomputeEveryMs) + 1 + 1
    expect(recomputed).toBeLessThanOrEqual(socketsHere.length * perSession)
    const expected = (
      await apiA.call<{ permissions: Array<string> }>(
        "GET",
        `${burstOrg.path}/users/${members[0]!.userId}/permissions`,
        { token: owner.token }
      )
    ).body.permissions
    for (const socket of socketsHere) {
      const held = new Set<string>()
      for (const frame of socket.frames) {
        if (frame.type === "hello") for (const key of frame.permissions as Array<string>) held.add(key)
        if (frame.type === "permissions") {
          for (const key of frame.added as Array<string>) held.add(key)
          for (const key of frame.removed as Array<string>) held.delete(key)
        }
      }
      expect([...held].sort()).toEqual([...expected].sort())
    }
    console.log(
      `burst: ${changes} changes in ${elapsed} ms, ${socketsHere.length} sessions, ${recomputed} recomputations`
    )
  }, 60_000)
})
