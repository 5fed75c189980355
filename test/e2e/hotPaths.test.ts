import { beforeAll, describe, expect, it } from "vitest"
import type { Rest } from "../support/AuthClient.ts"
import { e2e } from "../support/E2e.ts"
import type { Tenant, User } from "../support/Tenant.ts"

/** Headers that differ between any two answers (request ids, dates), or that the client sent back. */
const VARYING = new Set(["x-request-id", "date", "connection", "keep-alive"])

const comparable = (answer: { status: number; body: unknown; headers: Headers }) => ({
  status: answer.status,
  body: answer.body,
  headers: Object.fromEntries([...answer.headers].filter(([name]) => !VARYING.has(name)).sort())
})

/**
 * `GET /v1/me` and cached checks are answered from memory on Node's request callback (HotPaths.ts)
 * when the node holds everything they need, and handed to the HttpApi routes otherwise. A query
 * string takes the same request to the routes (the hot paths match exact paths only), so each
 * request here is asked both ways and the answers must be the same bytes: status, body and every
 * header but the request id and the date, for allowed, denied and refused cases alike.
 */
describe("hot paths answer exactly what the routes answer", () => {
  const { api, signUp, createOrganization, tenant } = e2e()
  let owner: User
  let member: User
  let stranger: User
  let org: string
  let orgAsOwner: Tenant

  const both = async (rest: Rest, method: "GET" | "POST", path: string, token: string, body?: unknown) => {
    // The hot path first: it holds the token once the routes have verified it (the warm-up below).
    const hot = await rest.call(method, path, { token, ...(body === undefined ? {} : { body }) })
    const routed = await rest.call(method, `${path}?via=routes`, { token, ...(body === undefined ? {} : { body }) })
    return { hot: comparable(hot), routed: comparable(routed) }
  }

  beforeAll(async () => {
    owner = await signUp("hot-owner")
    member = await signUp("hot-member")
    stranger = await signUp("hot-stranger")
    org = await createOrganization(owner, "hotpaths")
    orgAsOwner = tenant(owner, org)
    await orgAsOwner.join(member, ["member"])
    await orgAsOwner.createPermission("documents:read", "Read documents")
    // Every token is verified once by the routes, so that the hot paths may take it.
    for (const user of [owner, member, stranger]) expect((await api.me(user.token)).status).toBe(200)
  }, 90_000)

  it("GET /v1/me", async () => {
    const { hot, routed } = await both(api, "GET", "/v1/me", member.token)
    expect(hot.status).toBe(200)
    expect(hot.body).toMatchObject({ id: member.userId })
    expect(hot).toEqual(routed)
  })

  it("cached checks: allowed, denied, about others with and without authz:check, a stranger, bad bodies", async () => {
    const path = `/v1/orgs/${org}/check`
    const cases: ReadonlyArray<readonly [User, unknown, number]> = [
      [member, { permission: "org:read", consistency: "cached" }, 200],
      [member, { permission: "documents:read", consistency: "cached" }, 200],
      [member, { permission: "org:read", resource: { type: "project", id: "p1" }, consistency: "cached" }, 200],
      [owner, { userId: member.userId, permission: "org:read", consistency: "cached" }, 200],
      [owner, { userId: member.userId.toUpperCase(), permission: "roles:create", consistency: "cached" }, 200],
      [member, { userId: owner.userId, permission: "org:read", consistency: "cached" }, 403],
      [owner, { userId: stranger.userId, permission: "org:read", consistency: "cached" }, 404],
      [stranger, { permission: "org:read", consistency: "cached" }, 404],
      [member, { permission: "not a key", consistency: "cached" }, 400],
      [member, { permission: "org:read", consistency: "sometimes" }, 400],
      [member, { permission: "org:read", minRevision: "999999999", consistency: "cached" }, 409]
    ]
    for (const [user, body, status] of cases) {
      const { hot, routed } = await both(api, "POST", path, user.token, body)
      expect({ body, status: hot.status }).toEqual({ body, status })
      expect(hot).toEqual(routed)
    }
  }, 60_000)

  it("cached batches, and a revision header that names the revision answered at", async () => {
    const path = `/v1/orgs/${org}/check/batch`
    const batch = {
      checks: [
        { permission: "org:read" },
        { permission: "documents:read" },
        { userId: member.userId, permission: "roles:create" }
      ],
      consistency: "cached"
    }
    const { hot, routed } = await both(api, "POST", path, owner.token, batch)
    expect(hot.status).toBe(200)
    expect((hot.body as { results: Array<unknown> }).results).toHaveLength(3)
    expect(hot.headers["x-permission-revision"]).toBe((hot.body as { revision: string }).revision)
    expect(hot).toEqual(routed)
    const others = await both(api, "POST", path, member.token, {
      ...batch,
      checks: [{ userId: owner.userId, permission: "org:read" }]
    })
    expect(others.hot.status).toBe(403)
    expect(others.hot).toEqual(others.routed)
  })

  it("live tickets: a session's next ticket (a reconnect) answers as the route does, but for the ticket itself", async () => {
    const body = { organizationId: org }
    expect((await api.call("POST", "/v1/realtime/tickets", { token: member.token, body })).status).toBe(201)
    const { hot, routed } = await both(api, "POST", "/v1/realtime/tickets", member.token, body)
    const fresh = (answer: typeof hot) => {
      const ticket = answer.body as { ticket: string; url: string; expiresIn: number }
      expect(ticket.url.endsWith(`ticket=${ticket.ticket}`)).toBe(true)
      return { ...answer, body: { ...ticket, ticket: "…", url: ticket.url.replace(ticket.ticket, "…") } }
    }
    expect(hot.status).toBe(201)
    expect(fresh(hot)).toEqual(fresh(routed))
    const stranger = await both(api, "POST", "/v1/realtime/tickets", member.token, {
      organizationId: crypto.randomUUID()
    })
    expect(stranger.hot.status).toBe(404)
    expect(stranger.hot).toEqual(stranger.routed)
  })

  it("a token logged out is refused on the hot path at once", async () => {
    const user = await signUp("hot-leaving")
    await orgAsOwner.join(user, ["member"])
    expect((await api.me(user.token)).status).toBe(200)
    const body = { permission: "org:read", consistency: "cached" }
    expect((await api.call("POST", `/v1/orgs/${org}/check`, { token: user.token, body })).status).toBe(200)
    expect((await api.call("POST", "/v1/auth/logout", { token: user.token })).status).toBe(204)
    expect((await api.me(user.token)).status).toBe(401)
    expect((await api.call("POST", `/v1/orgs/${org}/check`, { token: user.token, body })).status).toBe(401)
  })
})
