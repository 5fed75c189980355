import { Effect, Either } from "effect"
import { describe, expect, it } from "vitest"
import { ApiClient } from "../../src/rpc/client.ts"
import { Conflict, Forbidden, NotFound } from "../../src/rpc/Errors.ts"
import { e2e, openApi } from "../support/E2e.ts"
import { query } from "../support/TestDatabase.ts"

interface GrantBody {
  readonly permission: string
  readonly effect: "allow" | "deny"
  readonly condition?: unknown
}

interface RoleBody {
  readonly id: string
  readonly name: string
  readonly description: string
  readonly isSystem: boolean
  readonly parentIds: ReadonlyArray<string>
  readonly grants: ReadonlyArray<GrantBody>
  readonly createdAt: string
  readonly updatedAt: string
}

interface RoleWriteBody {
  readonly role: RoleBody
  readonly revision: string
  readonly code?: string
  readonly message?: string
}

interface ErrorBody {
  readonly code: string
  readonly message: string
}

const ownerOnly = { eq: [{ var: "resource.attributes.ownerId" }, { var: "subject.id" }] } as const

describe("roles and the permission catalog, end to end on Postgres and Redis", () => {
  const { database, server, api, signUp, addMember, createOrganization, rpc } = e2e()

  /** A new user who owns a new organization (at revision 1). */
  const newOwner = async (label: string) => {
    const owner = await signUp(label)
    return { ...owner, orgId: await createOrganization(owner, label) }
  }

  const roles = (orgId: string, token: string) => api.call<Array<RoleBody>>("GET", `/v1/orgs/${orgId}/roles`, { token })
  const systemRoleId = async (orgId: string, token: string, name: string) =>
    (await roles(orgId, token)).body.find((role) => role.name === name)!.id
  const createRole = (orgId: string, token: string, body: Record<string, unknown>) =>
    api.call<RoleWriteBody>("POST", `/v1/orgs/${orgId}/roles`, { token, body })
  const setParents = (orgId: string, token: string, roleId: string, parentIds: ReadonlyArray<string>) =>
    api.call<RoleWriteBody>("PUT", `/v1/orgs/${orgId}/roles/${roleId}/parents`, { token, body: { parentIds } })
  const setGrants = (orgId: string, token: string, roleId: string, grants: unknown) =>
    api.call<RoleWriteBody>("PUT", `/v1/orgs/${orgId}/roles/${roleId}/grants`, { token, body: { grants } })
  const revisionOf = async (orgId: string) =>
    String((await query(database.url, "SELECT revision::text FROM organizations WHERE id = $1", [orgId]))[0]!.revision)

  it("creates, lists, reads, renames and deletes a role; each write adds one to the revision, with its event and audit entry", async () => {
    const owner = await newOwner("crud")
    const created = await createRole(owner.orgId, owner.token, { name: "  Editors ", description: "Edit documents" })
    expect(created.status).toBe(201)
    expect(created.body).toMatchObject({
      revision: "2",
      role: { name: "Editors", description: "Edit documents", isSystem: false, parentIds: [], grants: [] }
    })
    expect(created.headers.get("x-permission-revision")).toBe("2")
    const roleId = created.body.role.id

    const list = await roles(owner.orgId, owner.token)
    expect(list.status).toBe(200)
    expect(list.body.map((role) => [role.name, role.isSystem]).sort()).toEqual([
      ["Editors", false],
      ["admin", true],
      ["member", true],
      ["owner", true],
      ["viewer", true]
    ])
    expect(list.body.find((role) => role.name === "owner")?.grants).toEqual([{ permission: "*", effect: "allow" }])

    const read = await api.call<RoleBody>("GET", `/v1/orgs/${owner.orgId}/roles/${roleId}`, { token: owner.token })
    expect(read.body).toEqual(created.body.role)

    const renamed = await api.call<RoleWriteBody>("PATCH", `/v1/orgs/${owner.orgId}/roles/${roleId}`, {
      token: owner.token,
      body: { name: "Writers", description: "Write documents" }
    })
    expect(renamed.status).toBe(200)
    expect(renamed.body).toMatchObject({
      revision: "3",
      role: { id: roleId, name: "Writers", description: "Write documents" }
    })
    expect(renamed.headers.get("x-permission-revision")).toBe("3")

    const deleted = await api.call("DELETE", `/v1/orgs/${owner.orgId}/roles/${roleId}`, { token: owner.token })
    expect(deleted.status).toBe(200)
    expect(deleted.body).toEqual({ deleted: true, revision: "4" })
    expect(deleted.headers.get("x-permission-revision")).toBe("4")
    expect((await api.call("GET", `/v1/orgs/${owner.orgId}/roles/${roleId}`, { token: owner.token })).status).toBe(404)
    expect((await api.call("DELETE", `/v1/orgs/${owner.orgId}/roles/${roleId}`, { token: owner.token })).status).toBe(
      404
    )

    const outbox = await query(
      database.url,
      "SELECT revision::text AS revision, event_type, payload FROM outbox WHERE organization_id = $1 AND revision > 1 ORDER BY revision",
      [owner.orgId]
    )
    expect(outbox).toEqual([
      { revision: "2", event_type: "role.created", payload: { roleId } },
      { revision: "3", event_type: "role.updated", payload: { roleId } },
      { revision: "4", event_type: "role.deleted", payload: { roleId } }
    ])
    const audit = await query(
      database.url,
      "SELECT action, actor_id, target, revision::text AS revision, data, ip, request_id FROM audit_log WHERE organization_id = $1 AND action LIKE 'role.%' ORDER BY id",
      [owner.orgId]
    )
    expect(audit.map((row) => [row.action, row.revision, row.target, row.actor_id])).toEqual([
      ["role.created", "2", roleId, owner.userId],
      ["role.updated", "3", roleId, owner.userId],
      ["role.deleted", "4", roleId, owner.userId]
    ])
    expect(audit[1]!.data).toEqual({
      before: { name: "Editors", description: "Edit documents" },
      after: { name: "Writers", description: "Write documents" }
    })
    expect(audit.every((row) => typeof row.ip === "string" && typeof row.request_id === "string")).toBe(true)
  })

  it("keeps role names unique in an organization, and a refused write leaves the revision alone", async () => {
    const owner = await newOwner("names")
    const first = await createRole(owner.orgId, owner.token, { name: "Ops" })
    const other = await createRole(owner.orgId, owner.token, { name: "Dev" })
    const again = await createRole(owner.orgId, owner.token, { name: "Ops" })
    expect(again.status).toBe(409)
    expect(again.body).toMatchObject({ code: "role_name_taken" })
    const clash = await api.call<ErrorBody>("PATCH", `/v1/orgs/${owner.orgId}/roles/${other.body.role.id}`, {
      token: owner.token,
      body: { name: "Ops" }
    })
    expect(clash.status).toBe(409)
    expect(clash.body.code).toBe("role_name_taken")
    expect(await revisionOf(owner.orgId)).toBe(other.body.revision)
    expect((await createRole(owner.orgId, owner.token, { name: "" })).status).toBe(400)
    expect((await createRole(owner.orgId, owner.token, { name: "x".repeat(201) })).status).toBe(400)
    expect(first.body.role.name).toBe("Ops")
  })

  it("never renames or deletes a system role, and keeps every system role's grants and parents (S44)", async () => {
    const owner = await newOwner("system")
    const adminId = await systemRoleId(owner.orgId, owner.token, "admin")
    const ownerId = await systemRoleId(owner.orgId, owner.token, "owner")
    const viewerId = await systemRoleId(owner.orgId, owner.token, "viewer")
    const before = await revisionOf(owner.orgId)

    const rename = await api.call<ErrorBody>("PATCH", `/v1/orgs/${owner.orgId}/roles/${adminId}`, {
      token: owner.token,
      body: { name: "superuser" }
    })
    expect(rename.status).toBe(409)
    expect(rename.body.code).toBe("system_role")
    for (const id of [adminId, ownerId, viewerId]) {
      const removal = await api.call<ErrorBody>("DELETE", `/v1/orgs/${owner.orgId}/roles/${id}`, { token: owner.token })
      expect(removal.status).toBe(409)
      expect(removal.body.code).toBe("system_role")
    }
    const ownerGrants = await setGrants(owner.orgId, owner.token, ownerId, [
      { permission: "org:read", effect: "allow" }
    ])
    expect(ownerGrants.status).toBe(409)
    expect(ownerGrants.body.code).toBe("system_role")
    const ownerParents = await setParents(owner.orgId, owner.token, ownerId, [viewerId])
    expect(ownerParents.status).toBe(409)
    expect(ownerParents.body.code).toBe("system_role")
    expect(await revisionOf(owner.orgId)).toBe(before)

    const described = await api.call<RoleWriteBody>("PATCH", `/v1/orgs/${owner.orgId}/roles/${adminId}`, {
      token: owner.token,
      body: { name: "admin", description: "Runs the place" }
    })
    expect(described.status).toBe(200)
    expect(described.body.role).toMatchObject({ name: "admin", description: "Runs the place", isSystem: true })
    // Not even the owner edits what a system role gives: admin to `deny *` would lock every admin out.
    for (const id of [adminId, viewerId]) {
      const grants = await setGrants(owner.orgId, owner.token, id, [{ permission: "*", effect: "deny" }])
      expect(grants.status).toBe(409)
      expect(grants.body.code).toBe("system_role")
      expect(grants.body.message).toMatch(/^The system role (admin|viewer) has fixed grants and parents/)
      expect((await setParents(owner.orgId, owner.token, id, [ownerId])).body.code).toBe("system_role")
    }
    const viewer = await api.call<RoleBody>("GET", `/v1/orgs/${owner.orgId}/roles/${viewerId}`, { token: owner.token })
    expect(viewer.body.grants).toEqual([{ permission: "org:read", effect: "allow" }])
    const owners = await api.call<RoleBody>("GET", `/v1/orgs/${owner.orgId}/roles/${ownerId}`, { token: owner.token })
    expect(owners.body.grants).toEqual([{ permission: "*", effect: "allow" }])
    expect(owners.body.parentIds).toEqual([])
  })

  it("replaces a role's parents and refuses a cycle, self-parenting and unknown parents", async () => {
    const owner = await newOwner("parents")
    const [a, b, c] = await Promise.all(
      ["A", "B", "C"].map(async (name) => (await createRole(owner.orgId, owner.token, { name })).body.role.id)
    )
    const viewerId = await systemRoleId(owner.orgId, owner.token, "viewer")

    const first = await setParents(owner.orgId, owner.token, a!, [b!, viewerId, b!])
    expect(first.status).toBe(200)
    expect([...first.body.role.parentIds].sort()).toEqual([b!, viewerId].sort())
    const replaced = await setParents(owner.orgId, owner.token, a!, [b!])
    expect(replaced.body.role.parentIds).toEqual([b])
    expect(Number(replaced.body.revision)).toBe(Number(first.body.revision) + 1)
    expect(replaced.headers.get("x-permission-revision")).toBe(replaced.body.revision)
    expect((await setParents(owner.orgId, owner.token, b!, [c!])).status).toBe(200)

    const before = await revisionOf(owner.orgId)
    const cycle = await setParents(owner.orgId, owner.token, c!, [a!])
    expect(cycle.status).toBe(409)
    expect(cycle.body.code).toBe("role_cycle")
    expect(cycle.body.message).toContain("C → A → B → C")
    const self = await setParents(owner.orgId, owner.token, a!, [a!])
    expect(self.status).toBe(409)
    expect(self.body.code).toBe("role_cycle")
    expect(self.body.message).toContain("A → A")
    const unknown = await setParents(owner.orgId, owner.token, a!, [crypto.randomUUID()])
    expect(unknown.status).toBe(404)
    expect(await revisionOf(owner.orgId)).toBe(before)
    expect(
      (await api.call<RoleBody>("GET", `/v1/orgs/${owner.orgId}/roles/${c}`, { token: owner.token })).body.parentIds
    ).toEqual([])

    const cleared = await setParents(owner.orgId, owner.token, a!, [])
    expect(cleared.body.role.parentIds).toEqual([])
    const events = await query(
      database.url,
      "SELECT payload FROM outbox WHERE organization_id = $1 AND event_type = 'role.parents_changed' ORDER BY revision",
      [owner.orgId]
    )
    expect(events.at(-1)!.payload).toEqual({ roleId: a, parentIds: [] })
    const audit = await query(
      database.url,
      "SELECT data, revision::text AS revision FROM audit_log WHERE organization_id = $1 AND action = 'role.parents_changed' ORDER BY id",
      [owner.orgId]
    )
    expect(audit.at(-1)).toEqual({
      data: { before: { parentIds: [b] }, after: { parentIds: [] } },
      revision: cleared.body.revision
    })
  })

  it("replaces grants with conditions, refuses bad conditions with 400 and unknown keys with 409", async () => {
    const owner = await newOwner("grants")
    const key = await api.call<{ permission: { key: string }; revision: string }>(
      "POST",
      `/v1/orgs/${owner.orgId}/permissions`,
      { token: owner.token, body: { key: "doc:read", description: "Read documents" } }
    )
    expect(key.status).toBe(201)
    const roleId = (await createRole(owner.orgId, owner.token, { name: "Authors" })).body.role.id
    const grants = [
      { permission: "doc:read", effect: "allow", condition: ownerOnly },
      { permission: "doc:*", effect: "deny", condition: { in: [{ var: "resource.type" }, ["secret", "vault"]] } },
      { permission: "org:read", effect: "allow" },
      { permission: "doc:read", effect: "allow", condition: ownerOnly }
    ]
    const set = await setGrants(owner.orgId, owner.token, roleId, grants)
    expect(set.status).toBe(200)
    expect(set.body.role.grants).toEqual([
      { permission: "doc:*", effect: "deny", condition: { in: [{ var: "resource.type" }, ["secret", "vault"]] } },
      { permission: "doc:read", effect: "allow", condition: ownerOnly },
      { permission: "org:read", effect: "allow" }
    ])
    const read = await api.call<RoleBody>("GET", `/v1/orgs/${owner.orgId}/roles/${roleId}`, { token: owner.token })
    expect(read.body.grants).toEqual(set.body.role.grants)
    const stored = await query(
      database.url,
      "SELECT condition FROM role_grants WHERE role_id = $1 AND permission = 'doc:read'",
      [roleId]
    )
    expect(stored).toEqual([{ condition: ownerOnly }])
    const revision = await revisionOf(owner.orgId)

    let tooDeep: unknown = { eq: [1, 1] }
    for (let i = 0; i < 8; i++) tooDeep = { not: tooDeep }
    const hugeDepth = 20_000
    const bad: ReadonlyArray<unknown> = [
      { eval: "process.exit(1)" },
      { eq: [1, 1], eval: "process.exit(1)" },
      { eq: [{ var: "process.env.SECRET" }, 1] },
      { eq: [{ var: "subject.id", code: "x" }, 1] },
      { xor: [{ eq: [1, 1] }] },
      { or: Array.from({ length: 40 }, () => ({ eq: [1, 2] })) },
      tooDeep
    ]
    for (const condition of bad) {
      const reply = await setGrants(owner.orgId, owner.token, roleId, [
        { permission: "doc:read", effect: "allow", condition }
      ])
      expect(reply.status).toBe(400)
      expect(reply.body.code).toBe("invalid_payload")
    }
    const deepBody = `{"grants":[{"permission":"doc:read","effect":"allow","condition":${'{"not":'.repeat(hugeDepth)}{"eq":[1,1]}${"}".repeat(hugeDepth)}}]}`
    const deep = await fetch(`${server.url}/v1/orgs/${owner.orgId}/roles/${roleId}/grants`, {
      method: "PUT",
      headers: { authorization: `Bearer ${owner.token}`, "content-type": "application/json" },
      body: deepBody
    })
    expect(deep.status).toBe(400)
    expect(((await deep.json()) as ErrorBody).message).toContain("larger than a condition may be")
    for (const permission of ["Doc:Read", "doc", "doc:read:all", "*:read"]) {
      expect((await setGrants(owner.orgId, owner.token, roleId, [{ permission, effect: "allow" }])).status).toBe(400)
    }
    expect(
      (await setGrants(owner.orgId, owner.token, roleId, [{ permission: "doc:read", effect: "maybe" }])).status
    ).toBe(400)

    const unknown = await setGrants(owner.orgId, owner.token, roleId, [
      { permission: "doc:read", effect: "allow" },
      { permission: "doc:write", effect: "allow" }
    ])
    expect(unknown.status).toBe(409)
    expect(unknown.body.code).toBe("unknown_permission")
    expect(unknown.body.message).toContain("doc:write")
    expect(await revisionOf(owner.orgId)).toBe(revision)
    expect(
      (await api.call<RoleBody>("GET", `/v1/orgs/${owner.orgId}/roles/${roleId}`, { token: owner.token })).body.grants
    ).toEqual(set.body.role.grants)

    const wildcards = await setGrants(owner.orgId, owner.token, roleId, [
      { permission: "reports:*", effect: "allow" },
      { permission: "*", effect: "deny", condition: { eq: [{ var: "subject.attributes.suspended" }, true] } }
    ])
    expect(wildcards.status).toBe(200)
    expect(wildcards.body.revision).toBe(String(Number(revision) + 1))
    const events = await query(
      database.url,
      "SELECT event_type, payload FROM outbox WHERE organization_id = $1 AND revision = $2",
      [owner.orgId, wildcards.body.revision]
    )
    expect(events).toEqual([{ event_type: "role.grants_changed", payload: { roleId } }])
    const [audit] = await query(
      database.url,
      "SELECT data FROM audit_log WHERE organization_id = $1 AND action = 'role.grants_changed' AND revision = $2",
      [owner.orgId, wildcards.body.revision]
    )
    expect((audit!.data as { before: { grants: unknown } }).before.grants).toEqual(set.body.role.grants)
    expect((audit!.data as { after: { grants: unknown } }).after.grants).toEqual(wildcards.body.role.grants)
  })

  it("lists built-in keys and the organization's own, refuses duplicates, and keeps each organization's keys to itself", async () => {
    const owner = await newOwner("catalog")
    const other = await newOwner("catalog-other")
    const created = await api.call<{ permission: unknown; revision: string }>(
      "POST",
      `/v1/orgs/${owner.orgId}/permissions`,
      {
        token: owner.token,
        body: { key: "invoice.pdf:export", description: "Export invoices" }
      }
    )
    expect(created.status).toBe(201)
    expect(created.body).toEqual({
      permission: { key: "invoice.pdf:export", description: "Export invoices", builtIn: false },
      revision: "2"
    })
    expect(created.headers.get("x-permission-revision")).toBe("2")
    const event = await query(
      database.url,
      "SELECT event_type, payload FROM outbox WHERE organization_id = $1 AND revision = 2",
      [owner.orgId]
    )
    expect(event).toEqual([{ event_type: "permission.created", payload: { key: "invoice.pdf:export" } }])
    const audit = await query(
      database.url,
      "SELECT target, revision::text AS revision FROM audit_log WHERE organization_id = $1 AND action = 'permission.created'",
      [owner.orgId]
    )
    expect(audit).toEqual([{ target: "invoice.pdf:export", revision: "2" }])

    const catalog = await api.call<Array<{ key: string; description: string; builtIn: boolean }>>(
      "GET",
      `/v1/orgs/${owner.orgId}/permissions`,
      { token: owner.token }
    )
    expect(catalog.status).toBe(200)
    const keys = catalog.body.map((p) => p.key)
    expect(keys).toEqual([...keys].sort())
    expect(catalog.body).toContainEqual({ key: "org:read", description: "See the organization", builtIn: true })
    expect(catalog.body).toContainEqual({ key: "roles:create", description: "Create roles", builtIn: true })
    expect(catalog.body).toContainEqual({ key: "invoice.pdf:export", description: "Export invoices", builtIn: false })

    for (const key of ["invoice.pdf:export", "org:read"]) {
      const duplicate = await api.call<ErrorBody>("POST", `/v1/orgs/${owner.orgId}/permissions`, {
        token: owner.token,
        body: { key }
      })
      expect(duplicate.status).toBe(409)
      expect(duplicate.body.code).toBe("permission_exists")
    }
    for (const key of ["Invoice:Export", "invoice", "invoice:", ":export", "invoice:*", "*"]) {
      const invalid = await api.call("POST", `/v1/orgs/${owner.orgId}/permissions`, {
        token: owner.token,
        body: { key }
      })
      expect(invalid.status).toBe(400)
    }
    expect(await revisionOf(owner.orgId)).toBe("2")

    const elsewhere = await api.call<Array<{ key: string }>>("GET", `/v1/orgs/${other.orgId}/permissions`, {
      token: other.token
    })
    expect(elsewhere.body.map((p) => p.key)).not.toContain("invoice.pdf:export")
    const otherRole = (await createRole(other.orgId, other.token, { name: "Billing" })).body.role.id
    const foreignKey = await setGrants(other.orgId, other.token, otherRole, [
      { permission: "invoice.pdf:export", effect: "allow" }
    ])
    expect(foreignKey.status).toBe(409)
    expect(foreignKey.body.code).toBe("unknown_permission")
    const ownKey = await api.call("POST", `/v1/orgs/${other.orgId}/permissions`, {
      token: other.token,
      body: { key: "invoice.pdf:export" }
    })
    expect(ownKey.status).toBe(201)
  })

  it("answers 404 to ids of another organization's roles, in paths and as parents", async () => {
    const a = await newOwner("tenant-a")
    const b = await newOwner("tenant-b")
    const mine = (await createRole(a.orgId, a.token, { name: "Mine" })).body.role.id
    const theirs = (await createRole(b.orgId, b.token, { name: "Theirs" })).body.role.id
    const theirAdmin = await systemRoleId(b.orgId, b.token, "admin")
    const before = await revisionOf(b.orgId)

    for (const id of [theirs, theirAdmin]) {
      const path = `/v1/orgs/${a.orgId}/roles/${id}`
      const attempts = [
        await api.call<ErrorBody>("GET", path, { token: a.token }),
        await api.call<ErrorBody>("PATCH", path, { token: a.token, body: { name: "Taken over", description: "x" } }),
        await api.call<ErrorBody>("DELETE", path, { token: a.token }),
        await setParents(a.orgId, a.token, id, []),
        await setGrants(a.orgId, a.token, id, [{ permission: "*", effect: "allow" }])
      ]
      for (const attempt of attempts) {
        expect(attempt.status).toBe(404)
        expect(attempt.body.code).toBe("not_found")
      }
    }
    expect((await setParents(a.orgId, a.token, mine, [theirs])).status).toBe(404)
    expect((await createRole(a.orgId, a.token, { name: "Child", parentIds: [theirs] })).status).toBe(404)
    expect((await roles(a.orgId, a.token)).body.map((role) => role.name)).not.toContain("Child")

    // B's owner, outside A, learns nothing about A's roles either.
    expect((await api.call("GET", `/v1/orgs/${a.orgId}/roles/${mine}`, { token: b.token })).status).toBe(404)
    expect((await roles(a.orgId, b.token)).status).toBe(404)
    expect((await createRole(a.orgId, b.token, { name: "Intruder" })).status).toBe(404)

    expect(await revisionOf(b.orgId)).toBe(before)
    const intact = await api.call<RoleBody>("GET", `/v1/orgs/${b.orgId}/roles/${theirs}`, { token: b.token })
    expect(intact.body).toMatchObject({ name: "Theirs", parentIds: [], grants: [] })
  })

  it("ignores fields a client must not set (organizationId, isSystem, id)", async () => {
    const a = await newOwner("mass-a")
    const b = await newOwner("mass-b")
    const fixedId = "00000000-0000-4000-8000-000000000001"
    const sneaky = await createRole(a.orgId, a.token, {
      name: "Sneaky",
      organizationId: b.orgId,
      isSystem: true,
      id: fixedId,
      createdAt: "2000-01-01T00:00:00Z",
      grants: [{ permission: "org:read", effect: "allow", grantedBy: b.userId }]
    })
    expect(sneaky.status).toBe(201)
    expect(sneaky.body.role).toMatchObject({
      name: "Sneaky",
      isSystem: false,
      grants: [{ permission: "org:read", effect: "allow" }]
    })
    expect(sneaky.body.role.id).not.toBe(fixedId)
    expect((await roles(b.orgId, b.token)).body.map((role) => role.name)).not.toContain("Sneaky")

    const patched = await api.call<RoleWriteBody>("PATCH", `/v1/orgs/${a.orgId}/roles/${sneaky.body.role.id}`, {
      token: a.token,
      body: { description: "still custom", isSystem: true, organizationId: b.orgId, id: fixedId }
    })
    expect(patched.body.role).toMatchObject({ id: sneaky.body.role.id, isSystem: false, description: "still custom" })
    const key = await api.call("POST", `/v1/orgs/${a.orgId}/permissions`, {
      token: a.token,
      body: { key: "mass:assign", organizationId: b.orgId, builtIn: true }
    })
    expect(key.body).toMatchObject({ permission: { key: "mass:assign", builtIn: false } })
    const inB = await api.call<Array<{ key: string }>>("GET", `/v1/orgs/${b.orgId}/permissions`, { token: b.token })
    expect(inB.body.map((p) => p.key)).not.toContain("mass:assign")
    expect(
      (await api.call("DELETE", `/v1/orgs/${a.orgId}/roles/${sneaky.body.role.id}`, { token: a.token })).status
    ).toBe(200)
  })

  it("answers 403 naming the missing permission to a member, and 401 without a session", async () => {
    const owner = await newOwner("guard")
    const member = await signUp("guard-member")
    await addMember(owner.orgId, member.userId, "member")
    expect((await roles(owner.orgId, member.token)).status).toBe(200)
    const refused = await createRole(owner.orgId, member.token, { name: "Mine now" })
    expect(refused.status).toBe(403)
    expect(refused.body.code).toBe("forbidden")
    expect(refused.body.message).toContain("roles:create")
    const catalog = await api.call<ErrorBody>("GET", `/v1/orgs/${owner.orgId}/permissions`, { token: member.token })
    expect(catalog.status).toBe(403)
    expect(catalog.body.message).toContain("permissions:read")
    const memberId = await systemRoleId(owner.orgId, member.token, "member")
    const grants = await setGrants(owner.orgId, member.token, memberId, [{ permission: "*", effect: "allow" }])
    expect(grants.status).toBe(403)
    expect(grants.body.message).toContain("roles:update")
    expect((await roles(owner.orgId, "")).status).toBe(401)
    expect((await api.call("GET", `/v1/orgs/${owner.orgId}/roles`)).status).toBe(401)
  })

  it("does not let an admin give what an admin does not hold", async () => {
    const owner = await newOwner("escalation")
    const admin = await signUp("escalation-admin")
    await addMember(owner.orgId, admin.userId, "admin")
    const roleId = (await createRole(owner.orgId, admin.token, { name: "Helpers" })).body.role.id
    const ownerId = await systemRoleId(owner.orgId, admin.token, "owner")
    const memberId = await systemRoleId(owner.orgId, admin.token, "member")
    const before = await revisionOf(owner.orgId)

    for (const permission of ["*", "org:delete", "org:*"]) {
      const refused = await setGrants(owner.orgId, admin.token, roleId, [{ permission, effect: "allow" }])
      expect(refused.status).toBe(403)
      expect(refused.body.code).toBe("forbidden")
      expect(refused.body.message).toMatch(/^You cannot give (\*|org:delete|org:\*): you do not hold it$/)
    }
    const conditional = await setGrants(owner.orgId, admin.token, roleId, [
      { permission: "org:delete", effect: "allow", condition: ownerOnly }
    ])
    expect(conditional.status).toBe(403)
    expect(conditional.body.message).toContain("org:delete")
    const viaCreate = await createRole(owner.orgId, admin.token, {
      name: "Deleters",
      grants: [{ permission: "org:delete", effect: "allow" }]
    })
    expect(viaCreate.status).toBe(403)
    expect(viaCreate.body.message).toContain("org:delete")
    const viaParent = await setParents(owner.orgId, admin.token, roleId, [ownerId])
    expect(viaParent.status).toBe(403)
    const viaCreateParent = await createRole(owner.orgId, admin.token, { name: "Owners too", parentIds: [ownerId] })
    expect(viaCreateParent.status).toBe(403)
    expect(await revisionOf(owner.orgId)).toBe(before)
    expect((await roles(owner.orgId, admin.token)).body.map((role) => role.name)).not.toContain("Deleters")

    // Only an owner adds a deny (S44).
    const deny = await setGrants(owner.orgId, admin.token, roleId, [
      { permission: "org:read", effect: "allow" },
      { permission: "org:delete", effect: "deny" }
    ])
    expect(deny.status).toBe(403)
    expect(deny.body.message).toBe("Only an owner can add a deny (deny org:delete)")
    const allowed = await setGrants(owner.orgId, admin.token, roleId, [{ permission: "org:read", effect: "allow" }])
    expect(allowed.status).toBe(200)
    expect((await setParents(owner.orgId, admin.token, roleId, [memberId])).status).toBe(200)
    const byOwner = await setGrants(owner.orgId, owner.token, roleId, [{ permission: "*", effect: "allow" }])
    expect(byOwner.status).toBe(200)
  })

  it("changes what the guard allows at once when a role's grants change", async () => {
    const owner = await newOwner("effect")
    const member = await signUp("effect-member")
    await addMember(owner.orgId, member.userId, "viewer")
    // System roles' grants are fixed: the member holds a custom role the owner changes.
    const memberId = (await createRole(owner.orgId, owner.token, { name: "Staff" })).body.role.id
    const given = await api.call("POST", `/v1/orgs/${owner.orgId}/assignments`, {
      token: owner.token,
      body: { userId: member.userId, roleId: memberId }
    })
    expect(given.status).toBe(201)
    const base = [
      { permission: "org:read", effect: "allow" },
      { permission: "members:read", effect: "allow" },
      { permission: "roles:read", effect: "allow" }
    ]
    expect((await createRole(owner.orgId, member.token, { name: "Before" })).status).toBe(403)
    expect(
      (await setGrants(owner.orgId, owner.token, memberId, [...base, { permission: "roles:create", effect: "allow" }]))
        .status
    ).toBe(200)
    expect((await createRole(owner.orgId, member.token, { name: "During" })).status).toBe(201)
    expect((await setGrants(owner.orgId, owner.token, memberId, base)).status).toBe(200)
    const after = await createRole(owner.orgId, member.token, { name: "After" })
    expect(after.status).toBe(403)
    expect(after.body.message).toContain("roles:create")

    // Inherited: a parent's grant counts, and a deny on the child beats it.
    const creators = (
      await createRole(owner.orgId, owner.token, {
        name: "Creators",
        grants: [{ permission: "roles:create", effect: "allow" }]
      })
    ).body.role.id
    expect((await setParents(owner.orgId, owner.token, memberId, [creators])).status).toBe(200)
    expect((await createRole(owner.orgId, member.token, { name: "Inherited" })).status).toBe(201)
    expect(
      (await setGrants(owner.orgId, owner.token, memberId, [...base, { permission: "roles:*", effect: "deny" }])).status
    ).toBe(200)
    const denied = await api.call<ErrorBody>("GET", `/v1/orgs/${owner.orgId}/roles`, { token: member.token })
    expect(denied.status).toBe(403)
    expect(denied.body.message).toContain("roles:read")
  })

  it("offers the same operations and typed errors through the RPC client", async () => {
    const owner = await newOwner("rpc")
    const stranger = await newOwner("rpc-stranger")
    const member = await signUp("rpc-member")
    await addMember(owner.orgId, member.userId, "member")
    let token = owner.token
    const run = rpc(() => token)
    const organizationId = owner.orgId

    const key = await run(
      Effect.flatMap(ApiClient, (c) =>
        c.permissions.create({ organizationId, key: "ticket:close", description: "Close" })
      )
    )
    expect(key).toMatchObject({ permission: { key: "ticket:close", builtIn: false }, revision: "2" })
    const catalog = await run(Effect.flatMap(ApiClient, (c) => c.permissions.list({ organizationId })))
    expect(catalog.map((p) => p.key)).toEqual(expect.arrayContaining(["ticket:close", "roles:update"]))

    const support = await run(
      Effect.flatMap(ApiClient, (c) =>
        c.roles.create({
          organizationId,
          name: "Support",
          grants: [{ permission: "ticket:close", effect: "allow", condition: ownerOnly }]
        })
      )
    )
    expect(support.revision).toBe("3")
    expect(support.role.grants).toEqual([{ permission: "ticket:close", effect: "allow", condition: ownerOnly }])
    const lead = await run(Effect.flatMap(ApiClient, (c) => c.roles.create({ organizationId, name: "Lead" })))
    const listed = await run(Effect.flatMap(ApiClient, (c) => c.roles.list({ organizationId })))
    expect(listed.map((role) => role.name).sort()).toEqual(["Lead", "Support", "admin", "member", "owner", "viewer"])
    const got = await run(Effect.flatMap(ApiClient, (c) => c.roles.get({ organizationId, roleId: support.role.id })))
    expect(got.name).toBe("Support")
    const renamed = await run(
      Effect.flatMap(ApiClient, (c) =>
        c.roles.update({ organizationId, roleId: support.role.id, name: "Helpdesk", description: "First line" })
      )
    )
    expect(renamed).toMatchObject({ revision: "5", role: { name: "Helpdesk", description: "First line" } })
    const parented = await run(
      Effect.flatMap(ApiClient, (c) =>
        c.roles.setParents({ organizationId, roleId: lead.role.id, parentIds: [support.role.id] })
      )
    )
    expect(parented.role.parentIds).toEqual([support.role.id])
    const cycle = await run(
      Effect.flatMap(ApiClient, (c) =>
        Effect.either(c.roles.setParents({ organizationId, roleId: support.role.id, parentIds: [lead.role.id] }))
      )
    )
    expect(Either.isLeft(cycle) && cycle.left).toBeInstanceOf(Conflict)
    expect(Either.isLeft(cycle) && (cycle.left as Conflict).code).toBe("role_cycle")
    const granted = await run(
      Effect.flatMap(ApiClient, (c) =>
        c.roles.setGrants({
          organizationId,
          roleId: lead.role.id,
          grants: [{ permission: "ticket:*", effect: "allow" }]
        })
      )
    )
    expect(granted).toMatchObject({ revision: "7", role: { grants: [{ permission: "ticket:*", effect: "allow" }] } })
    const unknownKey = await run(
      Effect.flatMap(ApiClient, (c) =>
        Effect.either(
          c.roles.setGrants({
            organizationId,
            roleId: lead.role.id,
            grants: [{ permission: "ticket:open", effect: "allow" }]
          })
        )
      )
    )
    expect(Either.isLeft(unknownKey) && (unknownKey.left as Conflict).code).toBe("unknown_permission")

    const foreignRole = await rpc(stranger.token)(
      Effect.flatMap(ApiClient, (c) => c.roles.create({ organizationId: stranger.orgId, name: "Foreign" }))
    )
    const foreign = await run(
      Effect.flatMap(ApiClient, (c) => Effect.either(c.roles.get({ organizationId, roleId: foreignRole.role.id })))
    )
    expect(Either.isLeft(foreign) && foreign.left).toBeInstanceOf(NotFound)

    token = member.token
    const refused = await run(
      Effect.flatMap(ApiClient, (c) => Effect.either(c.roles.create({ organizationId, name: "Nope" })))
    )
    expect(Either.isLeft(refused) && refused.left).toBeInstanceOf(Forbidden)
    expect(Either.isLeft(refused) && (refused.left as Forbidden).message).toContain("roles:create")

    token = owner.token
    const deleted = await run(
      Effect.flatMap(ApiClient, (c) => c.roles.delete({ organizationId, roleId: lead.role.id }))
    )
    expect(deleted).toMatchObject({ deleted: true, revision: "8" })
    const gone = await run(
      Effect.flatMap(ApiClient, (c) => Effect.either(c.roles.get({ organizationId, roleId: lead.role.id })))
    )
    expect(Either.isLeft(gone) && gone.left).toBeInstanceOf(NotFound)
    const system = await run(
      Effect.flatMap(ApiClient, (c) =>
        Effect.gen(function* () {
          const all = yield* c.roles.list({ organizationId })
          return yield* Effect.either(
            c.roles.delete({ organizationId, roleId: all.find((r) => r.name === "owner")!.id })
          )
        })
      )
    )
    expect(Either.isLeft(system) && (system.left as Conflict).code).toBe("system_role")
    const audit = await query(
      database.url,
      "SELECT action, revision::text AS revision FROM audit_log WHERE organization_id = $1 AND revision > 1 ORDER BY revision",
      [organizationId]
    )
    expect(audit.map((row) => row.action)).toEqual([
      "permission.created",
      "role.created",
      "role.created",
      "role.updated",
      "role.parents_changed",
      "role.grants_changed",
      "role.deleted"
    ])
  })

  it("documents each endpoint's permission in the OpenAPI document", async () => {
    const spec = await openApi(server.url)
    const required = (path: string, method: string) => spec.paths[path]?.[method]?.["x-required-permission"]
    expect(required("/v1/orgs/{organizationId}/permissions", "get")).toBe("permissions:read")
    expect(required("/v1/orgs/{organizationId}/permissions", "post")).toBe("permissions:create")
    expect(required("/v1/orgs/{organizationId}/roles", "get")).toBe("roles:read")
    expect(required("/v1/orgs/{organizationId}/roles", "post")).toBe("roles:create")
    expect(required("/v1/orgs/{organizationId}/roles/{roleId}", "get")).toBe("roles:read")
    expect(required("/v1/orgs/{organizationId}/roles/{roleId}", "patch")).toBe("roles:update")
    expect(required("/v1/orgs/{organizationId}/roles/{roleId}", "delete")).toBe("roles:delete")
    expect(required("/v1/orgs/{organizationId}/roles/{roleId}/parents", "put")).toBe("roles:update")
    expect(required("/v1/orgs/{organizationId}/roles/{roleId}/grants", "put")).toBe("roles:update")
  })
})
