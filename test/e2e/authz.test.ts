import { Effect, Either } from "effect"
import { beforeAll, describe, expect, it } from "vitest"
import { ApiClient } from "../../src/rpc/client.ts"
import { Forbidden, NotFound } from "../../src/rpc/Errors.ts"
import type { Rest } from "../support/AuthClient.ts"
import { e2e } from "../support/E2e.ts"
import type { ServerProcess } from "../support/ServerProcess.ts"
import type { Tenant, User } from "../support/Tenant.ts"
import { query } from "../support/TestDatabase.ts"

interface Check {
  readonly allowed: boolean
  readonly reason: string
  readonly revision: string
  readonly code?: string
  readonly message?: string
}

/**
 * Checks, batches, explanations and effective sets through a running cluster of two nodes on one
 * Postgres and one Redis, set up only through the public API (invitations, roles, assignments).
 */
describe("checks and explanations, end to end on two nodes", () => {
  const { node, api: apiA, signUp, createOrganization, tenant, another } = e2e()
  let b: ServerProcess
  let apiB: Rest
  let owner: User
  let member: User
  let stranger: User
  let org: string
  let roles: Record<string, string>
  let orgAsOwner: Tenant

  const check = (api: Rest, token: string, body: Record<string, unknown>, organizationId = org) =>
    api.call<Check>("POST", `/v1/orgs/${organizationId}/check`, { token, body })

  beforeAll(async () => {
    ;({ server: b, api: apiB } = await another())
    owner = await signUp("owner")
    member = await signUp("member")
    stranger = await signUp("stranger")
    org = await createOrganization(owner, "checks")
    orgAsOwner = tenant(owner, org)
    await orgAsOwner.join(member, ["member"])
    roles = await orgAsOwner.roleIds()
    await orgAsOwner.createPermission("documents:read", "Read documents")
    await orgAsOwner.createPermission("documents:write", "Write documents")
  }, 90_000)

  it("lets any member check themselves, and needs authz:check to ask about someone else", async () => {
    const self = await check(apiA, member.token, { permission: "org:read" })
    expect(self.status).toBe(200)
    expect(self.body).toMatchObject({ allowed: true, revision: expect.stringMatching(/^\d+$/) })
    expect(self.body.reason).toContain("member")
    const denied = await check(apiA, member.token, { permission: "roles:create" })
    expect(denied.body).toMatchObject({ allowed: false, reason: "no grant allows it (default deny)" })

    const other = await check(apiA, member.token, { userId: owner.userId, permission: "org:read" })
    expect(other.status).toBe(403)
    expect(other.body.message).toContain("authz:check")

    const byOwner = await check(apiA, owner.token, { userId: member.userId, permission: "members:read" })
    expect(byOwner.body).toMatchObject({ allowed: true })
    const aboutStranger = await check(apiA, owner.token, { userId: stranger.userId, permission: "org:read" })
    expect(aboutStranger.status).toBe(404)
    const strangerAsks = await check(apiA, stranger.token, { permission: "org:read" })
    expect(strangerAsks.status).toBe(404)
    const unknownOrg = await check(apiA, owner.token, { permission: "org:read" }, crypto.randomUUID())
    expect(unknownOrg.status).toBe(404)
    const noToken = await apiA.call("POST", `/v1/orgs/${org}/check`, { body: { permission: "org:read" } })
    expect(noToken.status).toBe(401)
    const badKey = await check(apiA, owner.token, { permission: "Not A Key" })
    expect(badKey.status).toBe(400)
  })

  it("gives read-your-writes across nodes: a grant made on A is seen on B at its revision, and so is its revocation", async () => {
    const reader = await orgAsOwner.createRole(`reader-${Date.now()}`, [
      { permission: "documents:read", effect: "allow" }
    ])
    const before = await check(apiB, member.token, { permission: "documents:read" })
    expect(before.body.allowed).toBe(false)

    const granted = await orgAsOwner.assign({ userId: member.userId, roleId: reader.role.id })
    const seen = await check(apiB, member.token, { permission: "documents:read", minRevision: granted.revision })
    expect(seen.body.allowed).toBe(true)
    expect(BigInt(seen.body.revision)).toBeGreaterThanOrEqual(BigInt(granted.revision))

    const revoked = await apiA.call<{ revision: string }>(
      "DELETE",
      `/v1/orgs/${org}/assignments/${granted.assignment.id}`,
      {
        token: owner.token
      }
    )
    expect(revoked.status).toBe(200)
    expect(BigInt(revoked.body.revision)).toBeGreaterThan(BigInt(granted.revision))
    // The very next check on the other node denies, with or without minRevision (S32, R6).
    const next = await check(apiB, member.token, { permission: "documents:read" })
    expect(next.body).toMatchObject({ allowed: false })
    const atRevision = await check(apiB, member.token, {
      permission: "documents:read",
      minRevision: revoked.body.revision
    })
    expect(atRevision.body).toMatchObject({ allowed: false, revision: revoked.body.revision })
  })

  it("refuses a revision the organization never reached, after waiting briefly", async () => {
    const started = Date.now()
    const future = await check(apiB, member.token, { permission: "org:read", minRevision: "999999999" })
    expect(future.status).toBe(409)
    expect(future.body).toMatchObject({ code: "revision_not_reached" })
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_500)
  })

  it("answers a batch in order at one revision, and refuses more than 100 checks", async () => {
    const batch = await apiB.call<{ revision: string; results: Array<{ allowed: boolean }> }>(
      "POST",
      `/v1/orgs/${org}/check/batch`,
      {
        token: owner.token,
        body: {
          checks: [
            { permission: "org:delete" },
            { userId: member.userId, permission: "org:delete" },
            { userId: member.userId, permission: "roles:read" }
          ]
        }
      }
    )
    expect(batch.status).toBe(200)
    expect(batch.body.results.map((r) => r.allowed)).toEqual([true, false, true])
    expect(batch.body.revision).toMatch(/^\d+$/)
    const tooMany = await apiB.call("POST", `/v1/orgs/${org}/check/batch`, {
      token: owner.token,
      body: { checks: Array.from({ length: 101 }, () => ({ permission: "org:read" })) }
    })
    expect(tooMany.status).toBe(400)
    const aboutOthers = await apiB.call("POST", `/v1/orgs/${org}/check/batch`, {
      token: member.token,
      body: { checks: [{ permission: "org:read" }, { userId: owner.userId, permission: "org:read" }] }
    })
    expect(aboutOthers.status).toBe(403)
  })

  it("applies scopes, conditions, inheritance and deny-wins, and explains every path", async () => {
    const base = await orgAsOwner.createRole(`base-${Date.now()}`, [{ permission: "documents:*", effect: "allow" }])
    const editor = await orgAsOwner.createRole(
      `editor-${Date.now()}`,
      [
        { permission: "documents:write", effect: "deny" },
        {
          permission: "documents:write",
          effect: "allow",
          condition: { eq: [{ var: "resource.attributes.ownerId" }, { var: "subject.id" }] }
        }
      ],
      [base.role.id]
    )
    const scoped = await orgAsOwner.assign({
      userId: member.userId,
      roleId: editor.role.id,
      scope: { type: "project", id: "42" }
    })
    const on42 = { type: "project", id: "42", attributes: { ownerId: member.userId } }
    const read42 = await check(apiB, member.token, {
      permission: "documents:read",
      resource: on42,
      minRevision: scoped.revision
    })
    expect(read42.body.allowed).toBe(true)
    expect(read42.body.reason).toContain("inherited")
    const read43 = await check(apiB, member.token, {
      permission: "documents:read",
      resource: { type: "project", id: "43" }
    })
    expect(read43.body.allowed).toBe(false)
    const write42 = await check(apiB, member.token, { permission: "documents:write", resource: on42 })
    expect(write42.body).toMatchObject({ allowed: false })
    expect(write42.body.reason).toMatch(/^denied/)

    const explained = await apiB.call<{
      allowed: boolean
      paths: Array<{ effect: string; permission: string; role: { name: string }; assignment: { id: string } }>
    }>("POST", `/v1/orgs/${org}/explain`, {
      token: member.token,
      body: { permission: "documents:write", resource: on42 }
    })
    expect(explained.status).toBe(200)
    expect(explained.body.allowed).toBe(false)
    const summary = explained.body.paths.map((p) => `${p.effect} ${p.permission} via ${p.role.name.split("-")[0]}`)
    expect(summary.sort()).toEqual([
      "allow documents:* via base",
      "allow documents:write via editor",
      "deny documents:write via editor"
    ])
    expect(new Set(explained.body.paths.map((p) => p.assignment.id))).toEqual(new Set([scoped.assignment.id]))

    // A missing attribute makes the owner-only allow false; the deny still applies.
    const missing = await apiB.call<{ paths: Array<{ effect: string; permission: string }> }>(
      "POST",
      `/v1/orgs/${org}/explain`,
      { token: member.token, body: { permission: "documents:write", resource: { type: "project", id: "42" } } }
    )
    expect(missing.body.paths.map((p) => `${p.effect} ${p.permission}`).sort()).toEqual([
      "allow documents:*",
      "deny documents:write"
    ])
    await apiA.call("DELETE", `/v1/orgs/${org}/assignments/${scoped.assignment.id}`, { token: owner.token })
  })

  it("loses an expiring assignment at its expiry, and records assignment.expired within a second", async () => {
    const temp = await orgAsOwner.createRole(`temp-${Date.now()}`, [{ permission: "documents:read", effect: "allow" }])
    const expiresAt = new Date(Date.now() + 2_000)
    const given = await orgAsOwner.assign({
      userId: member.userId,
      roleId: temp.role.id,
      expiresAt: expiresAt.toISOString()
    })
    const during = await check(apiB, member.token, { permission: "documents:read", minRevision: given.revision })
    expect(during.body.allowed).toBe(true)
    const effectiveDuring = await apiB.call<{ permissions: Array<string> }>(
      "GET",
      `/v1/orgs/${org}/users/${member.userId}/permissions`,
      { token: member.token }
    )
    expect(effectiveDuring.body.permissions).toContain("documents:read")

    await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiresAt.getTime() - Date.now() + 50)))
    const after = await check(apiB, member.token, { permission: "documents:read" })
    expect(after.body.allowed).toBe(false)

    await new Promise((resolve) => setTimeout(resolve, 1_000))
    const recorded = await query(
      node.database.url,
      "SELECT revision::text AS revision, created_at FROM outbox WHERE organization_id = $1 AND event_type = 'assignment.expired' AND payload->>'assignmentId' = $2",
      [org, given.assignment.id]
    )
    expect(recorded).toHaveLength(1)
    expect(BigInt(recorded[0]!.revision as string)).toBeGreaterThan(BigInt(given.revision))
    expect((recorded[0]!.created_at as Date).getTime() - expiresAt.getTime()).toBeLessThan(1_000)
    const effectiveAfter = await apiB.call<{ permissions: Array<string>; revision: string }>(
      "GET",
      `/v1/orgs/${org}/users/${member.userId}/permissions`,
      { token: member.token }
    )
    expect(effectiveAfter.body.permissions).not.toContain("documents:read")
  })

  it("shows effective permissions to the user themselves, and to others only with assignments:read", async () => {
    const own = await apiA.call<{ userId: string; permissions: Array<string>; revision: string }>(
      "GET",
      `/v1/orgs/${org}/users/${member.userId}/permissions`,
      { token: member.token }
    )
    expect(own.status).toBe(200)
    expect(own.body.permissions).toEqual(expect.arrayContaining(["org:read", "members:read", "roles:read"]))
    expect(own.body.permissions).not.toContain("org:delete")
    const others = await apiA.call("GET", `/v1/orgs/${org}/users/${owner.userId}/permissions`, { token: member.token })
    expect(others.status).toBe(403)
    const byOwner = await apiA.call<{ permissions: Array<string> }>(
      "GET",
      `/v1/orgs/${org}/users/${member.userId}/permissions`,
      { token: owner.token }
    )
    expect(byOwner.body.permissions).toEqual(own.body.permissions)
    const strangerSet = await apiA.call("GET", `/v1/orgs/${org}/users/${stranger.userId}/permissions`, {
      token: owner.token
    })
    expect(strangerSet.status).toBe(404)
  })

  it("offers the same operations and errors through the RPC client", async () => {
    const result = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const client = yield* ApiClient.make(`${b.url}/rpc`, { accessToken: () => member.token })
          const self = yield* client.authz.check({ organizationId: org, permission: "org:read" })
          const explained = yield* client.authz.explain({ organizationId: org, permission: "org:read" })
          const effective = yield* client.authz.effective({ organizationId: org, userId: member.userId })
          const aboutOwner = yield* Effect.either(
            client.authz.check({ organizationId: org, userId: owner.userId, permission: "org:read" })
          )
          const foreign = yield* Effect.either(
            client.authz.check({ organizationId: crypto.randomUUID(), permission: "org:read" })
          )
          const batch = yield* client.authz.checkBatch({
            organizationId: org,
            checks: [{ permission: "org:read" }, { permission: "org:delete" }]
          })
          return { self, explained, effective, aboutOwner, foreign, batch }
        })
      )
    )
    expect(result.self).toMatchObject({ allowed: true })
    expect(result.explained.paths.map((p) => p.role.name)).toContain("member")
    expect(result.effective.permissions).toContain("org:read")
    expect(Either.isLeft(result.aboutOwner) && result.aboutOwner.left).toBeInstanceOf(Forbidden)
    expect(Either.isLeft(result.foreign) && result.foreign.left).toBeInstanceOf(NotFound)
    expect(result.batch.results.map((r) => r.allowed)).toEqual([true, false])
  })

  it("keeps ids of another organization out: its users and ids answer 404", async () => {
    const other = await apiA.call<{ id: string }>("POST", "/v1/orgs", {
      token: stranger.token,
      body: { name: "Other", slug: `other-${Date.now()}` }
    })
    // The owner of `org` asks about the other organization's owner through their own organization.
    const crossUser = await check(apiA, owner.token, { userId: stranger.userId, permission: "org:read" })
    expect(crossUser.status).toBe(404)
    // And through the other organization's path, where they are no member.
    const crossOrg = await check(apiA, owner.token, { permission: "org:read" }, other.body.id)
    expect(crossOrg.status).toBe(404)
    const crossEffective = await apiA.call("GET", `/v1/orgs/${other.body.id}/users/${stranger.userId}/permissions`, {
      token: owner.token
    })
    expect(crossEffective.status).toBe(404)
    expect(roles.owner).toBeDefined()
  })
})
