/**
 * Identifiers are canonical from decoding on (S49): an organization or user id sent in uppercase
 * names the same entity as its lowercase form on both doors and on the live socket (the ticket,
 * the diffs it gets, the removal and the freeze that end it), and an email address is one account
 * whatever its case or Unicode normalisation. Real Postgres and Redis, raw `ws` sockets, HTTP and
 * the RPC client.
 */
import { Effect, Redacted } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ApiClient } from "../../src/rpc/client.ts"
import { rest, type TokenPairBody, uniqueEmail } from "../support/AuthClient.ts"
import { rpcAt } from "../support/E2e.ts"
import { liveSession, type TestSocket } from "../support/LiveSocket.ts"
import type { ServerProcess } from "../support/ServerProcess.ts"
import { createOrganization, signUp, tenant, type User } from "../support/Tenant.ts"
import { startTestNode, type TestNode } from "../support/TestNode.ts"

const ORIGIN = "https://app.example.com"
const ADMIN = { email: `canonical-admin-${Date.now()}@example.com`, password: "canonical admin passphrase" }

describe("one entity, one key (S49)", () => {
  let node: TestNode
  let a: ServerProcess
  let b: ServerProcess
  let api: ReturnType<typeof rest>
  let owner: User
  let org: ReturnType<typeof tenant>
  const sockets: Array<TestSocket> = []

  beforeAll(async () => {
    node = await startTestNode({
      TRUST_PROXY: "1",
      AUTH_IP_RATE_LIMIT: "1000",
      ALLOWED_ORIGINS: ORIGIN,
      ADMIN_EMAIL: ADMIN.email,
      ADMIN_PASSWORD: ADMIN.password
    })
    a = node.server
    b = await node.another()
    api = rest(a.url)
    owner = await signUp(api, "canonical-owner")
    org = tenant(api, node.dataDir, owner, await createOrganization(api, owner, "canonical"))
    await org.createPermission("docs:read")
  }, 120_000)

  afterAll(async () => {
    for (const socket of sockets) socket.close()
    await node?.stop()
  })

  /** A socket on node B with a ticket asked for with the organization id in UPPERCASE, over HTTP or RPC. */
  const openUppercase = async (member: User, door: "http" | "rpc", organizationId = org.organizationId) => {
    const upper = organizationId.toUpperCase()
    const socket = await liveSession(
      async () => {
        if (door === "rpc") {
          const issued = await rpcAt(a.url)(member.token)(
            Effect.flatMap(ApiClient, (client) => client.realtime.ticket({ organizationId: upper }))
          )
          return `${b.wsUrl}?ticket=${issued.ticket}`
        }
        const issued = await api.call<{ ticket: string }>("POST", "/v1/realtime/tickets", {
          token: member.token,
          body: { organizationId: upper }
        })
        expect(issued.status).toBe(201)
        return `${b.wsUrl}?ticket=${issued.body.ticket}`
      },
      { origin: ORIGIN }
    )
    sockets.push(socket)
    return socket
  }

  it.each(["http", "rpc"] as const)(
    "a ticket asked for with an UPPERCASE organization id (%s) gets diffs and ends on removal by an UPPERCASE user id (S49)",
    async (door) => {
      const member = await signUp(api, `canonical-${door}`)
      await org.join(member, ["member"])
      const socket = await openUppercase(member, door)
      expect(await socket.next("hello")).toMatchObject({ organizationId: org.organizationId, userId: member.userId })

      const { role } = await org.createRole(`canonical-reader-${door}`, [{ permission: "docs:read", effect: "allow" }])
      const given = await org.assign({ userId: member.userId.toUpperCase(), roleId: role.id.toUpperCase() })
      expect(await socket.next("permissions")).toMatchObject({ revision: given.revision, added: ["docs:read"] })

      const path = `/v1/orgs/${org.organizationId.toUpperCase()}/members/${member.userId.toUpperCase()}`
      if (door === "http") {
        expect((await api.call("DELETE", path, { token: owner.token })).status).toBe(200)
      } else {
        await rpcAt(a.url)(owner.token)(
          Effect.flatMap(ApiClient, (client) =>
            client.members.remove({
              organizationId: org.organizationId.toUpperCase(),
              userId: member.userId.toUpperCase()
            })
          )
        )
      }
      expect(await socket.next("revoked")).toEqual({ type: "revoked", reason: "member_removed" })
      expect((await socket.closed).code).toBe(4001)
      // One member, not two: the organization no longer lists them under either spelling.
      const members = await api.call<Array<{ userId: string }>>("GET", `${org.path}/members`, { token: owner.token })
      expect(members.body.map((m) => m.userId)).not.toContain(member.userId)
    }
  )

  it("a freeze of the organization by its UPPERCASE id ends a socket opened with the UPPERCASE id (S49)", async () => {
    const frozenOwner = await signUp(api, "canonical-frozen")
    const frozenOrg = await createOrganization(api, frozenOwner, "canonical-frozen")
    const socket = await openUppercase(frozenOwner, "http", frozenOrg)
    expect(await socket.next("hello")).toMatchObject({ organizationId: frozenOrg })
    const admin = (await api.login(ADMIN.email, ADMIN.password)).body as TokenPairBody
    const frozen = await api.call("POST", `/v1/admin/orgs/${frozenOrg.toUpperCase()}/freeze`, {
      token: admin.accessToken
    })
    expect(frozen.status).toBe(200)
    expect(await socket.next("revoked")).toEqual({ type: "revoked", reason: "organization_frozen" })
  })

  it("answers a user's permissions by an UPPERCASE id exactly as by the lowercase one, on both doors (S49)", async () => {
    const member = await signUp(api, "canonical-read")
    await org.join(member, ["member"])
    const lower = await api.call("GET", `${org.path}/users/${member.userId}/permissions`, { token: owner.token })
    const upper = await api.call(
      "GET",
      `/v1/orgs/${org.organizationId.toUpperCase()}/users/${member.userId.toUpperCase()}/permissions`,
      { token: owner.token }
    )
    expect(upper.status).toBe(200)
    expect(upper.body).toEqual(lower.body)
    const overRpc = await rpcAt(a.url)(owner.token)(
      Effect.flatMap(ApiClient, (client) =>
        client.authz.effective({
          organizationId: org.organizationId.toUpperCase(),
          userId: member.userId.toUpperCase()
        })
      )
    )
    expect(overRpc.userId).toBe(member.userId)
    expect(overRpc.permissions).toEqual((lower.body as { permissions: Array<string> }).permissions)
  })

  it("an email is one account whatever its case and Unicode normalisation, on both doors (S49)", async () => {
    const local = uniqueEmail("canonical").split("@")[0]!
    // "é" decomposed (e + combining acute) and in mixed case at sign-up …
    const decomposed = `${local}-Re\u0301sume\u0301@Example.COM`
    const composed = `${local}-résumé@example.com`
    expect((await api.register(decomposed, "first passphrase for this account")).status).toBe(202)
    // … signs in composed and lowercase, over HTTP and RPC.
    expect((await api.login(composed, "first passphrase for this account")).status).toBe(200)
    const overRpc = await rpcAt(a.url)()(
      Effect.flatMap(ApiClient, (client) =>
        client.auth.login({
          email: composed.toUpperCase(),
          password: Redacted.make("first passphrase for this account")
        })
      )
    )
    expect(overRpc).toMatchObject({ tokenType: "Bearer" })
    // Registering the other spelling makes no second account: its password does not sign in.
    expect((await api.register(composed, "second passphrase for another")).status).toBe(202)
    expect((await api.login(decomposed, "second passphrase for another")).status).toBe(401)
    const me = await api.me((overRpc as { accessToken: string }).accessToken)
    expect(me.body.email).toBe(composed)
  })
})
