import { Effect, Either } from "effect"
import { describe, expect, it } from "vitest"
import { ApiClient } from "../../src/rpc/client.ts"
import { Forbidden, NotFound } from "../../src/rpc/Errors.ts"
import { e2e, openApi } from "../support/E2e.ts"
import { query } from "../support/TestDatabase.ts"

describe("organizations and the guard, end to end on Postgres and Redis", () => {
  const { database, server, api, signUp, addMember, rpc } = e2e()

  const createOrg = async (token: string, slug: string) =>
    api.call<{ id: string; revision: string; name: string; slug: string; status: string }>("POST", "/v1/orgs", {
      token,
      body: { name: `Org ${slug}`, slug }
    })

  it("creates an organization whose creator is its owner, at revision 1, with the revision in a header", async () => {
    const owner = await signUp("owner")
    const created = await createOrg(owner.token, `acme-${Date.now()}`)
    expect(created.status).toBe(201)
    expect(created.body).toMatchObject({ status: "active", revision: "1" })
    expect(created.headers.get("x-permission-revision")).toBe("1")
    const list = await api.call<Array<{ id: string; roles: Array<string> }>>("GET", "/v1/orgs", { token: owner.token })
    expect(list.body).toEqual([expect.objectContaining({ id: created.body.id, roles: ["owner"] })])
    const roles = await query(
      database.url,
      "SELECT name, is_system FROM roles WHERE organization_id = $1 ORDER BY name",
      [created.body.id]
    )
    expect(roles).toEqual([
      { name: "admin", is_system: true },
      { name: "member", is_system: true },
      { name: "owner", is_system: true },
      { name: "viewer", is_system: true }
    ])
    const outbox = await query(
      database.url,
      "SELECT revision::text, event_type FROM outbox WHERE organization_id = $1",
      [created.body.id]
    )
    expect(outbox.map((row) => row.event_type).sort()).toEqual(["assignment.added", "organization.created"])
    expect(outbox.every((row) => row.revision === "1")).toBe(true)
  })

  it("answers a body nested 200,000 levels deep with 400, not a crash", async () => {
    const owner = await signUp("deep")
    const deep = `${"[".repeat(200_000)}${"]".repeat(200_000)}`
    const response = await fetch(`${server.url}/v1/orgs`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${owner.token}` },
      body: `{"name":${deep},"slug":"deep"}`
    })
    expect(response.status).toBe(400)
    expect(await response.json()).toMatchObject({ code: "invalid_payload" })
    expect((await fetch(`${server.url}/health/live`)).status).toBe(200)
  })

  it("refuses a taken slug with 409 and ignores fields a client must not set", async () => {
    const owner = await signUp("slug")
    const slug = `taken-${Date.now()}`
    expect((await createOrg(owner.token, slug)).status).toBe(201)
    const again = await createOrg(owner.token, slug)
    expect(again.status).toBe(409)
    expect(again.body).toMatchObject({ code: "slug_taken" })
    const sneaky = await api.call<{ id: string; status: string }>("POST", "/v1/orgs", {
      token: owner.token,
      body: {
        name: "Sneaky",
        slug: `sneaky-${Date.now()}`,
        status: "frozen",
        id: "00000000-0000-0000-0000-000000000001",
        revision: "99"
      }
    })
    expect(sneaky.body).toMatchObject({ status: "active", revision: "1" })
    expect(sneaky.body.id).not.toBe("00000000-0000-0000-0000-000000000001")
  })

  it("lets the owner read, rename and delete; renaming returns the revision", async () => {
    const owner = await signUp("crud")
    const org = (await createOrg(owner.token, `crud-${Date.now()}`)).body
    const read = await api.call("GET", `/v1/orgs/${org.id}`, { token: owner.token })
    expect(read.body).toMatchObject({ id: org.id, name: org.name })
    const renamed = await api.call("PATCH", `/v1/orgs/${org.id}`, { token: owner.token, body: { name: "Renamed" } })
    expect(renamed.status).toBe(200)
    expect(renamed.body).toMatchObject({ name: "Renamed", revision: "1" })
    expect(renamed.headers.get("x-permission-revision")).toBe("1")
    expect((await api.call("DELETE", `/v1/orgs/${org.id}`, { token: owner.token })).status).toBe(204)
    expect((await api.call("GET", `/v1/orgs/${org.id}`, { token: owner.token })).status).toBe(404)
  })

  it("answers 404 to someone outside the organization, whatever the operation: ids of other tenants reveal nothing", async () => {
    const a = await signUp("tenant-a")
    const b = await signUp("tenant-b")
    const orgA = (await createOrg(a.token, `tenant-a-${Date.now()}`)).body
    await createOrg(b.token, `tenant-b-${Date.now()}`)
    for (const [method, body] of [
      ["GET", undefined],
      ["PATCH", { name: "Taken over" }],
      ["DELETE", undefined]
    ] as const) {
      const reply = await api.call(method, `/v1/orgs/${orgA.id}`, { token: b.token, ...(body ? { body } : {}) })
      expect(reply.status).toBe(404)
      expect(reply.body).toMatchObject({ code: "not_found" })
    }
    expect((await api.call("GET", `/v1/orgs/${crypto.randomUUID()}`, { token: b.token })).status).toBe(404)
    expect((await api.call("GET", "/v1/orgs/not-a-uuid", { token: b.token })).status).toBeGreaterThanOrEqual(400)
    expect((await api.call("GET", `/v1/orgs/${orgA.id}`, { token: a.token })).body).toMatchObject({ name: orgA.name })
  })

  it("answers 403 naming the missing permission to a member without it, and 401 without a session", async () => {
    const owner = await signUp("perm-owner")
    const viewer = await signUp("perm-viewer")
    const org = (await createOrg(owner.token, `perm-${Date.now()}`)).body
    await addMember(org.id, viewer.userId, "viewer")
    expect((await api.call("GET", `/v1/orgs/${org.id}`, { token: viewer.token })).status).toBe(200)
    const rename = await api.call("PATCH", `/v1/orgs/${org.id}`, { token: viewer.token, body: { name: "Nope" } })
    expect(rename.status).toBe(403)
    expect(rename.body).toMatchObject({ code: "forbidden" })
    expect(String(rename.body.message)).toContain("org:update")
    const admin = await signUp("perm-admin")
    await addMember(org.id, admin.userId, "admin")
    expect(
      (await api.call("PATCH", `/v1/orgs/${org.id}`, { token: admin.token, body: { name: "By admin" } })).status
    ).toBe(200)
    expect((await api.call("DELETE", `/v1/orgs/${org.id}`, { token: admin.token })).status).toBe(403)
    expect((await api.call("GET", `/v1/orgs/${org.id}`)).status).toBe(401)
  })

  it("denies everything in a frozen organization at once", async () => {
    const owner = await signUp("frozen")
    const org = (await createOrg(owner.token, `frozen-${Date.now()}`)).body
    await query(database.url, "UPDATE organizations SET status = 'frozen', revision = revision + 1 WHERE id = $1", [
      org.id
    ])
    const reply = await api.call("GET", `/v1/orgs/${org.id}`, { token: owner.token })
    expect(reply.status).toBe(403)
    expect(String(reply.body.message)).toContain("frozen")
  })

  it("guards the RPC door the same way, with the same error classes", async () => {
    const owner = await signUp("rpc-owner")
    const stranger = await signUp("rpc-stranger")
    const viewer = await signUp("rpc-viewer")
    let token = owner.token
    const run = rpc(() => token)
    const org = await run(
      Effect.flatMap(ApiClient, (c) => c.orgs.create({ name: "Via RPC", slug: `rpc-${Date.now()}` }))
    )
    expect(org.revision).toBe("1")
    await addMember(org.id, viewer.userId, "viewer")
    const mine = await run(Effect.flatMap(ApiClient, (c) => c.orgs.list()))
    expect(mine.map((o) => o.id)).toContain(org.id)
    expect((await run(Effect.flatMap(ApiClient, (c) => c.orgs.get({ organizationId: org.id })))).name).toBe("Via RPC")
    token = stranger.token
    const hidden = await run(Effect.flatMap(ApiClient, (c) => Effect.either(c.orgs.get({ organizationId: org.id }))))
    expect(Either.isLeft(hidden) && hidden.left).toBeInstanceOf(NotFound)
    token = viewer.token
    const refused = await run(
      Effect.flatMap(ApiClient, (c) => Effect.either(c.orgs.update({ organizationId: org.id, name: "No" })))
    )
    expect(Either.isLeft(refused) && refused.left).toBeInstanceOf(Forbidden)
  })

  it("documents each organization endpoint's permission in the OpenAPI document", async () => {
    const spec = await openApi(server.url)
    expect(spec.paths["/v1/orgs/{organizationId}"]?.get?.["x-required-permission"]).toBe("org:read")
    expect(spec.paths["/v1/orgs/{organizationId}"]?.patch?.["x-required-permission"]).toBe("org:update")
    expect(spec.paths["/v1/orgs/{organizationId}"]?.delete?.["x-required-permission"]).toBe("org:delete")
  })
})
