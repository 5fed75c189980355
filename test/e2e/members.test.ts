import { DateTime, Effect, Either } from "effect"
import { describe, expect, it } from "vitest"
import { ApiClient } from "../../src/rpc/client.ts"
import { Conflict, Forbidden, NotFound } from "../../src/rpc/Errors.ts"
import { type Reply, uniqueEmail } from "../support/AuthClient.ts"
import { e2e, openApi } from "../support/E2e.ts"
import { invitationToken as mailedInvitation } from "../support/Tenant.ts"
import { query } from "../support/TestDatabase.ts"

interface InvitationBody {
  readonly id: string
  readonly email: string
  readonly roleIds: ReadonlyArray<string>
  readonly expiresAt: string
  readonly createdAt: string
}

interface AssignmentBody {
  readonly id: string
  readonly userId: string
  readonly roleId: string
  readonly roleName: string
  readonly scope?: { type: string; id: string }
  readonly expiresAt?: string
  readonly grantedBy: string | null
  readonly createdAt: string
}

interface MemberBody {
  readonly userId: string
  readonly email: string
  readonly name: string
  readonly joinedAt: string
  readonly roles: ReadonlyArray<{ assignmentId: string; roleId: string; name: string; scope?: unknown }>
}

// The mail sink: with no MAIL_URL the node writes each message as a .eml file under DATA_DIR/mail.
describe("members, invitations and assignments, end to end on Postgres and Redis", () => {
  const { node, database, server, api, signUp, createOrganization: createOrg, tenant, rpc } = e2e()

  // Setup and inspection only: the roles API is another part of the issue, so system role ids are read here.
  const roleId = async (organizationId: string, name: string) =>
    String(
      (
        await query(database.url, "SELECT id FROM roles WHERE organization_id = $1 AND name = $2", [
          organizationId,
          name
        ])
      )[0]?.id
    )

  const revisionOf = async (organizationId: string) =>
    String(
      (
        await query(database.url, "SELECT revision::text AS revision FROM organizations WHERE id = $1", [
          organizationId
        ])
      )[0]?.revision
    )

  const invite = (token: string, organizationId: string, body: Record<string, unknown>) =>
    api.call<{ invitation: InvitationBody; code?: string; message?: string }>(
      "POST",
      `/v1/orgs/${organizationId}/invitations`,
      { token, body }
    )

  /** The token of the `nth` invitation mailed to `email` (1 = the first), waiting for it to arrive. */
  const invitationToken = (email: string, nth = 1) => mailedInvitation(node.dataDir, email, nth)

  const accept = (token: string, invitationToken: string) =>
    api.call<{ organizationId: string; roles: Array<string>; revision: string; code?: string; message?: string }>(
      "POST",
      "/v1/invitations/accept",
      { token, body: { token: invitationToken } }
    )

  const assign = (token: string, organizationId: string, body: Record<string, unknown>) =>
    api.call<{ assignment: AssignmentBody; revision: string; code?: string; message?: string }>(
      "POST",
      `/v1/orgs/${organizationId}/assignments`,
      { token, body }
    )

  const assignments = (token: string, organizationId: string, search = "") =>
    api.call<Array<AssignmentBody>>("GET", `/v1/orgs/${organizationId}/assignments${search}`, { token })

  const expectRevisionStep = (reply: Reply<{ revision: string }>, before: string) => {
    expect(reply.body.revision).toBe(String(BigInt(before) + 1n))
    expect(reply.headers.get("x-permission-revision")).toBe(reply.body.revision)
  }

  it("mails a single-use invitation; the invited address joins with the invited roles and can then read the organization", async () => {
    const owner = await signUp("inv-owner")
    const invitee = await signUp("inv-guest")
    const org = await createOrg(owner, "inv")
    const memberRole = await roleId(org, "member")
    const revision = await revisionOf(org)

    const created = await invite(owner.token, org, {
      email: `  ${invitee.email.toUpperCase()} `,
      roleIds: [memberRole]
    })
    expect(created.status).toBe(201)
    expect(created.body.invitation).toMatchObject({ email: invitee.email, roleIds: [memberRole] })
    const ttl = Date.parse(created.body.invitation.expiresAt) - Date.parse(created.body.invitation.createdAt)
    expect(Math.abs(ttl - 7 * 24 * 3600 * 1000)).toBeLessThan(60_000)
    expect(JSON.stringify(created.body)).not.toMatch(/token/i)
    // Nobody's permissions changed: no new revision.
    expect(await revisionOf(org)).toBe(revision)

    const { token, mail } = await invitationToken(invitee.email)
    expect(mail.text).toContain(`/invitations/accept?token=${token}`)
    const stored = await query(
      database.url,
      "SELECT encode(token_hash, 'hex') AS hash FROM invitations WHERE id = $1",
      [created.body.invitation.id]
    )
    expect(stored[0]?.hash).toMatch(/^[0-9a-f]{64}$/)
    expect(JSON.stringify(stored)).not.toContain(token)

    const pending = await api.call<Array<InvitationBody>>("GET", `/v1/orgs/${org}/invitations`, { token: owner.token })
    expect(pending.status).toBe(200)
    expect(pending.body).toEqual([created.body.invitation])

    expect((await api.call("GET", `/v1/orgs/${org}`, { token: invitee.token })).status).toBe(404)
    const joined = await accept(invitee.token, token)
    expect(joined.status).toBe(200)
    expect(joined.body).toMatchObject({ organizationId: org, roles: ["member"] })
    expectRevisionStep(joined, revision)

    expect((await api.call("GET", `/v1/orgs/${org}`, { token: invitee.token })).status).toBe(200)
    const members = await api.call<Array<MemberBody>>("GET", `/v1/orgs/${org}/members`, { token: invitee.token })
    expect(members.status).toBe(200)
    expect(members.body.map((m) => [m.email, m.roles.map((r) => r.name)])).toEqual([
      [owner.email, ["owner"]],
      [invitee.email, ["member"]]
    ])
    expect((await api.call<Array<unknown>>("GET", `/v1/orgs/${org}/invitations`, { token: owner.token })).body).toEqual(
      []
    )

    const again = await accept(invitee.token, token)
    expect(again.status).toBe(404)
    expect(again.body.message).toBe("No such invitation, or it has expired or been used")

    const events = await query(
      database.url,
      "SELECT event_type, payload FROM outbox WHERE organization_id = $1 AND revision = $2 ORDER BY id",
      [org, joined.body.revision]
    )
    expect(events.map((e) => e.event_type)).toEqual(["member.added", "assignment.added"])
    const audit = await query(
      database.url,
      "SELECT action, revision::text AS revision, data::text AS data FROM audit_log WHERE organization_id = $1 AND action LIKE 'invitation.%' ORDER BY id",
      [org]
    )
    expect(audit.map((a) => [a.action, a.revision])).toEqual([
      ["invitation.created", null],
      ["invitation.accepted", joined.body.revision]
    ])
    expect(audit.map((a) => String(a.data)).join()).not.toContain(token)
  })

  it("refuses another signed-in user (the invitation stays usable), and expired, revoked or unknown tokens", async () => {
    const owner = await signUp("acc-owner")
    const invitee = await signUp("acc-guest")
    const stranger = await signUp("acc-stranger")
    const org = await createOrg(owner, "acc")

    await invite(owner.token, org, { email: invitee.email })
    const { token } = await invitationToken(invitee.email)
    const wrong = await accept(stranger.token, token)
    expect(wrong.status).toBe(403)
    expect(wrong.body).toMatchObject({ code: "forbidden", message: "This invitation was sent to another address" })
    expect((await api.call("GET", `/v1/orgs/${org}`, { token: stranger.token })).status).toBe(404)
    const right = await accept(invitee.token, token)
    expect(right.status).toBe(200)
    expect(right.body.roles).toEqual([])

    expect((await accept(invitee.token, "x".repeat(43))).status).toBe(404)
    expect((await api.call("POST", "/v1/invitations/accept", { body: { token } })).status).toBe(401)

    // Expiry: moved into the past with SQL, since waiting 7 days is not an option.
    const late = await signUp("acc-late")
    const lateInvitation = await invite(owner.token, org, { email: late.email })
    const { token: lateToken } = await invitationToken(late.email)
    await query(database.url, "UPDATE invitations SET expires_at = now() - interval '1 minute' WHERE id = $1", [
      lateInvitation.body.invitation.id
    ])
    expect((await accept(late.token, lateToken)).status).toBe(404)
    const listed = await api.call<Array<InvitationBody>>("GET", `/v1/orgs/${org}/invitations`, { token: owner.token })
    expect(listed.body.map((i) => i.id)).not.toContain(lateInvitation.body.invitation.id)

    const revoked = await signUp("acc-revoked")
    const revokedInvitation = await invite(owner.token, org, { email: revoked.email })
    const { token: revokedToken } = await invitationToken(revoked.email)
    const revision = await revisionOf(org)
    const revoke = await api.call("DELETE", `/v1/orgs/${org}/invitations/${revokedInvitation.body.invitation.id}`, {
      token: owner.token
    })
    expect(revoke.status).toBe(200)
    expect(revoke.body).toEqual({ revoked: true })
    expect(await revisionOf(org)).toBe(revision)
    expect((await accept(revoked.token, revokedToken)).status).toBe(404)
    expect(
      (
        await api.call("DELETE", `/v1/orgs/${org}/invitations/${revokedInvitation.body.invitation.id}`, {
          token: owner.token
        })
      ).status
    ).toBe(404)
    expect(
      (await api.call("DELETE", `/v1/orgs/${org}/invitations/${crypto.randomUUID()}`, { token: owner.token })).status
    ).toBe(404)
    expect((await api.call("GET", `/v1/orgs/${org}`, { token: revoked.token })).status).toBe(404)
  })

  it("refuses inviting a member, roles of other organizations, and roles the inviter does not hold", async () => {
    const owner = await signUp("invrule-owner")
    const admin = await signUp("invrule-admin")
    const other = await signUp("invrule-other")
    const org = await createOrg(owner, "invrule")
    const otherOrg = await createOrg(other, "invrule-b")
    await tenant(owner, org).join(admin, ["admin"])

    const member = await invite(owner.token, org, { email: admin.email.toUpperCase() })
    expect(member.status).toBe(409)
    expect(member.body).toMatchObject({ code: "already_member" })
    const foreign = await invite(owner.token, org, {
      email: uniqueEmail("x"),
      roleIds: [await roleId(otherOrg, "admin")]
    })
    expect(foreign.status).toBe(404)
    const escalation = await invite(admin.token, org, {
      email: uniqueEmail("y"),
      roleIds: [await roleId(org, "owner")]
    })
    expect(escalation.status).toBe(403)
    expect(String(escalation.body.message)).toMatch(/^You cannot give .+: you do not hold it$/)
    const allowed = await invite(admin.token, org, { email: uniqueEmail("z"), roleIds: [await roleId(org, "admin")] })
    expect(allowed.status).toBe(201)
    expect((await invite(owner.token, org, { email: "not an email" })).status).toBe(400)
  })

  it("skips roles deleted since the invitation; uses up a second invitation with 409; revokes pending ones on removal", async () => {
    const owner = await signUp("life-owner")
    const bob = await signUp("life-bob")
    const org = await createOrg(owner, "life")
    // A custom role made and deleted with SQL: the roles API is another part of the issue.
    const [custom] = await query(
      database.url,
      "INSERT INTO roles (organization_id, name) VALUES ($1, 'temporary') RETURNING id",
      [org]
    )
    const viewer = await roleId(org, "viewer")
    const first = await invite(owner.token, org, { email: bob.email, roleIds: [custom?.id, viewer] })
    expect(first.body.invitation.roleIds).toEqual([custom?.id, viewer])
    await invite(owner.token, org, { email: bob.email })
    await invite(owner.token, org, { email: bob.email })
    const [one, two, three] = [
      (await invitationToken(bob.email, 1)).token,
      (await invitationToken(bob.email, 2)).token,
      (await invitationToken(bob.email, 3)).token
    ]
    await query(database.url, "DELETE FROM roles WHERE id = $1", [custom?.id])
    const listed = await api.call<Array<InvitationBody>>("GET", `/v1/orgs/${org}/invitations`, { token: owner.token })
    expect(listed.body.find((i) => i.id === first.body.invitation.id)?.roleIds).toEqual([viewer])

    const joined = await accept(bob.token, one)
    expect(joined.body.roles).toEqual(["viewer"])
    const revision = await revisionOf(org)
    const again = await accept(bob.token, two)
    expect(again.status).toBe(409)
    expect(again.body.code).toBe("already_member")
    expect(await revisionOf(org)).toBe(revision)
    expect((await accept(bob.token, two)).status).toBe(404)

    expect((await api.call("DELETE", `/v1/orgs/${org}/members/${bob.userId}`, { token: owner.token })).status).toBe(200)
    expect((await accept(bob.token, three)).status).toBe(404)
    expect((await api.call("GET", `/v1/orgs/${org}`, { token: bob.token })).status).toBe(404)
    expect((await api.call<Array<unknown>>("GET", `/v1/orgs/${org}/invitations`, { token: owner.token })).body).toEqual(
      []
    )
  })

  it("lets only one of two parallel accepts of a token join", async () => {
    const owner = await signUp("race-owner")
    const invitee = await signUp("race-guest")
    const org = await createOrg(owner, "race")
    await invite(owner.token, org, { email: invitee.email, roleIds: [await roleId(org, "viewer")] })
    const { token } = await invitationToken(invitee.email)
    const replies = await Promise.all([accept(invitee.token, token), accept(invitee.token, token)])
    expect(replies.map((r) => r.status).sort()).toEqual([200, 404])
    const added = await query(
      database.url,
      "SELECT count(*)::int AS n FROM outbox WHERE organization_id = $1 AND event_type = 'member.added'",
      [org]
    )
    expect(added[0]?.n).toBe(1)
    expect(
      (await query(database.url, "SELECT count(*)::int AS n FROM assignments WHERE user_id = $1", [invitee.userId]))[0]
        ?.n
    ).toBe(1)
  })

  it("gives and takes roles by the rules: members only, own roles only, no duplicates, future expiry, no escalation", async () => {
    const owner = await signUp("asg-owner")
    const admin = await signUp("asg-admin")
    const bob = await signUp("asg-bob")
    const outsider = await signUp("asg-outsider")
    const org = await createOrg(owner, "asg")
    const otherOrg = await createOrg(outsider, "asg-b")
    await tenant(owner, org).join(admin, ["admin"])
    await tenant(owner, org).join(bob, [])
    const viewer = await roleId(org, "viewer")
    const ownerRole = await roleId(org, "owner")

    let revision = await revisionOf(org)
    const given = await assign(admin.token, org, { userId: bob.userId, roleId: viewer })
    expect(given.status).toBe(201)
    expect(given.body.assignment).toMatchObject({
      userId: bob.userId,
      roleId: viewer,
      roleName: "viewer",
      grantedBy: admin.userId
    })
    expect(given.body.assignment.scope).toBeUndefined()
    expectRevisionStep(given, revision)
    revision = given.body.revision
    expect((await api.call("GET", `/v1/orgs/${org}`, { token: bob.token })).status).toBe(200)

    const duplicate = await assign(admin.token, org, { userId: bob.userId, roleId: viewer })
    expect(duplicate.status).toBe(409)
    expect(duplicate.body.code).toBe("already_assigned")
    const scoped = await assign(admin.token, org, {
      userId: bob.userId,
      roleId: viewer,
      scope: { type: "project", id: "42" }
    })
    expect(scoped.status).toBe(201)
    expect(scoped.body.assignment.scope).toEqual({ type: "project", id: "42" })
    expect(
      (await assign(admin.token, org, { userId: bob.userId, roleId: viewer, scope: { type: "project", id: "42" } }))
        .status
    ).toBe(409)
    for (const scope of [
      { type: "Project", id: "1" },
      { type: "project", id: "" },
      { type: "p", id: "x".repeat(201) }
    ]) {
      expect((await assign(admin.token, org, { userId: bob.userId, roleId: viewer, scope })).status).toBe(400)
    }

    const past = await assign(admin.token, org, {
      userId: bob.userId,
      roleId: await roleId(org, "member"),
      expiresAt: new Date(Date.now() - 60_000).toISOString()
    })
    expect(past.status).toBe(400)
    const expiresAt = new Date(Date.now() + 3_600_000).toISOString()
    const future = await assign(admin.token, org, {
      userId: bob.userId,
      roleId: await roleId(org, "member"),
      expiresAt
    })
    expect(future.status).toBe(201)
    expect(Date.parse(String(future.body.assignment.expiresAt))).toBe(Date.parse(expiresAt))

    const notMember = await assign(admin.token, org, { userId: outsider.userId, roleId: viewer })
    expect(notMember.status).toBe(404)
    expect(notMember.body.message).toBe("No such member")
    expect(
      (await assign(admin.token, org, { userId: bob.userId, roleId: await roleId(otherOrg, "viewer") })).status
    ).toBe(404)
    expect((await assign(admin.token, org, { userId: bob.userId, roleId: crypto.randomUUID() })).status).toBe(404)

    const escalation = await assign(admin.token, org, { userId: bob.userId, roleId: ownerRole })
    expect(escalation.status).toBe(403)
    expect(escalation.body).toMatchObject({ code: "forbidden" })
    expect(String(escalation.body.message)).toContain("you do not hold it")
    // None of the refusals moved the revision.
    expect(await revisionOf(org)).toBe(future.body.revision)

    const bobs = await assignments(admin.token, org, `?userId=${bob.userId}`)
    expect(bobs.status).toBe(200)
    expect(bobs.body.map((a) => a.id).sort()).toEqual(
      [given.body.assignment.id, scoped.body.assignment.id, future.body.assignment.id].sort()
    )
    const viewers = await assignments(admin.token, org, `?roleId=${viewer}`)
    expect(viewers.body.every((a) => a.roleId === viewer)).toBe(true)
    expect(viewers.body).toHaveLength(2)

    revision = await revisionOf(org)
    const removed = await api.call<{ deleted: boolean; revision: string }>(
      "DELETE",
      `/v1/orgs/${org}/assignments/${scoped.body.assignment.id}`,
      { token: admin.token }
    )
    expect(removed.status).toBe(200)
    expect(removed.body.deleted).toBe(true)
    expectRevisionStep(removed, revision)
    expect(
      (await api.call("DELETE", `/v1/orgs/${org}/assignments/${scoped.body.assignment.id}`, { token: admin.token }))
        .status
    ).toBe(404)
    const events = await query(
      database.url,
      "SELECT event_type, payload FROM outbox WHERE organization_id = $1 AND revision = $2",
      [org, removed.body.revision]
    )
    expect(events).toEqual([
      {
        event_type: "assignment.removed",
        payload: {
          assignmentId: scoped.body.assignment.id,
          userId: bob.userId,
          roleId: viewer,
          scope: { type: "project", id: "42" }
        }
      }
    ])
    const audit = await query(
      database.url,
      "SELECT action, actor_id, revision::text AS revision FROM audit_log WHERE target = $1 ORDER BY id",
      [`assignment:${scoped.body.assignment.id}`]
    )
    expect(audit).toEqual([
      { action: "assignment.created", actor_id: admin.userId, revision: scoped.body.revision },
      { action: "assignment.deleted", actor_id: admin.userId, revision: removed.body.revision }
    ])

    // Expired assignments are listed only on request (expiry set in the past with SQL).
    await query(database.url, "UPDATE assignments SET expires_at = now() - interval '1 second' WHERE id = $1", [
      future.body.assignment.id
    ])
    expect((await assignments(admin.token, org, `?userId=${bob.userId}`)).body.map((a) => a.id)).not.toContain(
      future.body.assignment.id
    )
    expect(
      (await assignments(admin.token, org, `?userId=${bob.userId}&includeExpired=true`)).body.map((a) => a.id)
    ).toContain(future.body.assignment.id)
    const listed = await api.call<Array<MemberBody>>("GET", `/v1/orgs/${org}/members`, { token: admin.token })
    expect(listed.body.find((m) => m.userId === bob.userId)?.roles.map((r) => r.name)).toEqual(["viewer"])
  })

  it("ignores fields a client must not set: organizationId, grantedBy, isSystem", async () => {
    const owner = await signUp("mass-owner")
    const bob = await signUp("mass-bob")
    const other = await signUp("mass-other")
    const org = await createOrg(owner, "mass")
    const otherOrg = await createOrg(other, "mass-b")
    await tenant(owner, org).join(bob, [])
    const given = await assign(owner.token, org, {
      userId: bob.userId,
      roleId: await roleId(org, "viewer"),
      organizationId: otherOrg,
      grantedBy: other.userId,
      isSystem: true,
      id: "00000000-0000-0000-0000-000000000001"
    })
    expect(given.status).toBe(201)
    expect(given.body.assignment.grantedBy).toBe(owner.userId)
    expect(given.body.assignment.id).not.toBe("00000000-0000-0000-0000-000000000001")
    const rows = await query(database.url, "SELECT organization_id, granted_by FROM assignments WHERE id = $1", [
      given.body.assignment.id
    ])
    expect(rows).toEqual([{ organization_id: org, granted_by: owner.userId }])
    const invited = await invite(owner.token, org, {
      email: uniqueEmail("mass"),
      organizationId: otherOrg,
      invitedBy: other.userId,
      isSystem: true
    })
    expect(invited.status).toBe(201)
    const stored = await query(database.url, "SELECT organization_id, invited_by FROM invitations WHERE id = $1", [
      invited.body.invitation.id
    ])
    expect(stored).toEqual([{ organization_id: org, invited_by: owner.userId }])
    expect(
      (
        await query(database.url, "SELECT count(*)::int AS n FROM invitations WHERE organization_id = $1", [otherOrg])
      )[0]?.n
    ).toBe(0)
  })

  it("keeps an organization-wide owner: the last one can be neither removed nor unassigned", async () => {
    const owner = await signUp("last-owner")
    const heir = await signUp("last-heir")
    const org = await createOrg(owner, "last")
    const ownerRole = await roleId(org, "owner")
    const [ownerAssignment] = (await assignments(owner.token, org, `?userId=${owner.userId}`)).body
    expect(ownerAssignment?.roleName).toBe("owner")

    const leave = await api.call("DELETE", `/v1/orgs/${org}/members/${owner.userId}`, { token: owner.token })
    expect(leave.status).toBe(409)
    expect(leave.body).toMatchObject({ code: "last_owner" })
    const drop = await api.call("DELETE", `/v1/orgs/${org}/assignments/${ownerAssignment?.id}`, { token: owner.token })
    expect(drop.status).toBe(409)
    expect(drop.body).toMatchObject({ code: "last_owner" })

    // A scoped owner role does not make anyone an owner of the organization.
    await tenant(owner, org).join(heir, [])
    const scoped = await assign(owner.token, org, {
      userId: heir.userId,
      roleId: ownerRole,
      scope: { type: "project", id: "1" }
    })
    expect(scoped.status).toBe(201)
    expect((await api.call("DELETE", `/v1/orgs/${org}/members/${owner.userId}`, { token: owner.token })).status).toBe(
      409
    )

    expect((await assign(owner.token, org, { userId: heir.userId, roleId: ownerRole })).status).toBe(201)
    expect(
      (await api.call("DELETE", `/v1/orgs/${org}/assignments/${ownerAssignment?.id}`, { token: owner.token })).status
    ).toBe(200)
    const heirAssignment = (await assignments(heir.token, org, `?userId=${heir.userId}`)).body.find(
      (a) => a.roleName === "owner" && a.scope === undefined
    )
    expect(
      (await api.call("DELETE", `/v1/orgs/${org}/assignments/${heirAssignment?.id}`, { token: heir.token })).body
    ).toMatchObject({ code: "last_owner" })
    expect((await api.call("DELETE", `/v1/orgs/${org}/members/${heir.userId}`, { token: heir.token })).status).toBe(409)
    expect((await api.call("DELETE", `/v1/orgs/${org}/members/${owner.userId}`, { token: heir.token })).status).toBe(
      200
    )
  })

  it("ends a removed member's access at once, with their assignments", async () => {
    const owner = await signUp("rm-owner")
    const bob = await signUp("rm-bob")
    const org = await createOrg(owner, "rm")
    await tenant(owner, org).join(bob, ["member"])
    const extra = await assign(owner.token, org, { userId: bob.userId, roleId: await roleId(org, "viewer") })
    expect(extra.status).toBe(201)
    expect((await api.call("GET", `/v1/orgs/${org}/members`, { token: bob.token })).status).toBe(200)

    const revision = await revisionOf(org)
    const removed = await api.call<{ removed: boolean; revision: string }>(
      "DELETE",
      `/v1/orgs/${org}/members/${bob.userId}`,
      {
        token: owner.token
      }
    )
    expect(removed.status).toBe(200)
    expect(removed.body.removed).toBe(true)
    expectRevisionStep(removed, revision)

    expect((await api.call("GET", `/v1/orgs/${org}`, { token: bob.token })).status).toBe(404)
    expect((await api.call("GET", `/v1/orgs/${org}/members`, { token: bob.token })).status).toBe(404)
    expect(
      (await api.call<Array<{ id: string }>>("GET", "/v1/orgs", { token: bob.token })).body.map((o) => o.id)
    ).not.toContain(org)
    expect((await assignments(owner.token, org, `?userId=${bob.userId}&includeExpired=true`)).body).toEqual([])
    expect(
      (await api.call("DELETE", `/v1/orgs/${org}/assignments/${extra.body.assignment.id}`, { token: owner.token }))
        .status
    ).toBe(404)
    const members = await api.call<Array<MemberBody>>("GET", `/v1/orgs/${org}/members`, { token: owner.token })
    expect(members.body.map((m) => m.userId)).toEqual([owner.userId])
    expect((await api.call("DELETE", `/v1/orgs/${org}/members/${bob.userId}`, { token: owner.token })).status).toBe(404)

    const events = await query(
      database.url,
      "SELECT event_type FROM outbox WHERE organization_id = $1 AND revision = $2 ORDER BY id",
      [org, removed.body.revision]
    )
    expect(events.map((e) => e.event_type)).toEqual(["member.removed", "assignment.removed", "assignment.removed"])
    const audit = await query(
      database.url,
      "SELECT actor_id, revision::text AS revision FROM audit_log WHERE action = 'member.removed' AND target = $1",
      [`user:${bob.userId}`]
    )
    expect(audit).toEqual([{ actor_id: owner.userId, revision: removed.body.revision }])

    // Invited back, they join again as a new member.
    await tenant(owner, org).join(bob, ["viewer"])
    expect((await api.call("GET", `/v1/orgs/${org}`, { token: bob.token })).status).toBe(200)
  })

  it("answers 403 naming the permission to a plain member", async () => {
    const owner = await signUp("perm-owner")
    const bob = await signUp("perm-bob")
    const org = await createOrg(owner, "perm")
    await tenant(owner, org).join(bob, ["member"])
    const assignment = await assign(bob.token, org, { userId: bob.userId, roleId: await roleId(org, "viewer") })
    expect(assignment.status).toBe(403)
    expect(assignment.body).toMatchObject({ code: "forbidden" })
    expect(String(assignment.body.message)).toContain("assignments:create")
    const invitation = await api.call("POST", `/v1/orgs/${org}/invitations`, {
      token: bob.token,
      body: { email: uniqueEmail("n") }
    })
    expect(invitation.status).toBe(403)
    expect(String(invitation.body.message)).toContain("members:invite")
    expect(String((await api.call("GET", `/v1/orgs/${org}/assignments`, { token: bob.token })).body.message)).toContain(
      "assignments:read"
    )
    expect(
      String((await api.call("DELETE", `/v1/orgs/${org}/members/${owner.userId}`, { token: bob.token })).body.message)
    ).toContain("members:remove")
    expect((await api.call("GET", `/v1/orgs/${org}/members`, { token: bob.token })).status).toBe(200)
  })

  it("answers 404 in organization A to every id of organization B, and changes nothing in B", async () => {
    const ownerA = await signUp("xt-a")
    const ownerB = await signUp("xt-b")
    const memberB = await signUp("xt-member-b")
    const orgA = await createOrg(ownerA, "xt-a")
    const orgB = await createOrg(ownerB, "xt-b")
    await tenant(ownerB, orgB).join(memberB, ["viewer"])
    const invitationB = (await invite(ownerB.token, orgB, { email: uniqueEmail("xt") })).body.invitation
    const [assignmentB] = (await assignments(ownerB.token, orgB, `?userId=${memberB.userId}`)).body
    const roleB = await roleId(orgB, "viewer")

    const snapshot = async () => ({
      revision: await revisionOf(orgB),
      invitations: await query(
        database.url,
        "SELECT id, revoked_at, accepted_at FROM invitations WHERE organization_id = $1 ORDER BY id",
        [orgB]
      ),
      memberships: await query(
        database.url,
        "SELECT user_id FROM memberships WHERE organization_id = $1 ORDER BY user_id",
        [orgB]
      ),
      assignments: await query(
        database.url,
        "SELECT id, user_id, role_id FROM assignments WHERE organization_id = $1 ORDER BY id",
        [orgB]
      )
    })
    const before = await snapshot()

    const t = ownerA.token
    const inA = [
      await api.call("DELETE", `/v1/orgs/${orgA}/invitations/${invitationB.id}`, { token: t }),
      await api.call("DELETE", `/v1/orgs/${orgA}/members/${memberB.userId}`, { token: t }),
      await api.call("DELETE", `/v1/orgs/${orgA}/members/${ownerB.userId}`, { token: t }),
      await api.call("DELETE", `/v1/orgs/${orgA}/assignments/${assignmentB?.id}`, { token: t }),
      await assign(t, orgA, { userId: memberB.userId, roleId: await roleId(orgA, "viewer") }),
      await assign(t, orgA, { userId: ownerA.userId, roleId: roleB }),
      await invite(t, orgA, { email: uniqueEmail("xt2"), roleIds: [roleB] })
    ]
    for (const reply of inA) {
      expect(reply.status).toBe(404)
      expect(reply.body).toMatchObject({ code: "not_found" })
    }
    expect((await assignments(t, orgA, `?userId=${memberB.userId}&includeExpired=true`)).body).toEqual([])
    expect((await assignments(t, orgA, `?roleId=${roleB}`)).body).toEqual([])
    const membersA = await api.call<Array<MemberBody>>("GET", `/v1/orgs/${orgA}/members`, { token: t })
    expect(membersA.body.map((m) => m.userId)).toEqual([ownerA.userId])
    const invitationsA = await api.call<Array<InvitationBody>>("GET", `/v1/orgs/${orgA}/invitations`, { token: t })
    expect(invitationsA.body.map((i) => i.id)).not.toContain(invitationB.id)

    // B's own paths, called by A's owner: not a member there, so 404 whatever the operation.
    const inB = [
      await api.call("GET", `/v1/orgs/${orgB}/members`, { token: t }),
      await api.call("GET", `/v1/orgs/${orgB}/invitations`, { token: t }),
      await api.call("GET", `/v1/orgs/${orgB}/assignments`, { token: t }),
      await api.call("DELETE", `/v1/orgs/${orgB}/invitations/${invitationB.id}`, { token: t }),
      await api.call("DELETE", `/v1/orgs/${orgB}/members/${memberB.userId}`, { token: t }),
      await api.call("DELETE", `/v1/orgs/${orgB}/assignments/${assignmentB?.id}`, { token: t }),
      await assign(t, orgB, { userId: ownerA.userId, roleId: roleB }),
      await invite(t, orgB, { email: uniqueEmail("xt3") })
    ]
    for (const reply of inB) expect(reply.status).toBe(404)

    expect(await snapshot()).toEqual(before)
  })

  it("works the same through the typed RPC client, with typed errors", async () => {
    const owner = await signUp("rpc-owner")
    const invitee = await signUp("rpc-guest")
    const outsider = await signUp("rpc-outsider")
    let token = owner.token
    const run = rpc(() => token)
    const client = <A, E>(f: (c: ApiClient["Type"]) => Effect.Effect<A, E>) => run(Effect.flatMap(ApiClient, f))
    const failure = async <A, E>(f: (c: ApiClient["Type"]) => Effect.Effect<A, E>) => {
      const result = await client((c) => Effect.either(f(c)))
      if (Either.isRight(result)) throw new Error("expected a failure")
      return result.left
    }

    const organizationId = await createOrg(owner, "rpc")
    const viewer = await roleId(organizationId, "viewer")
    const created = await client((c) =>
      c.invitations.create({ organizationId, email: invitee.email, roleIds: [viewer] })
    )
    expect(created.invitation.email).toBe(invitee.email)
    expect((await client((c) => c.invitations.list({ organizationId }))).map((i) => i.id)).toEqual([
      created.invitation.id
    ])

    const { token: mailed } = await invitationToken(invitee.email)
    token = outsider.token
    expect(await failure((c) => c.invitations.accept({ token: mailed }))).toBeInstanceOf(Forbidden)
    token = invitee.token
    const joined = await client((c) => c.invitations.accept({ token: mailed }))
    expect(joined).toMatchObject({ organizationId, roles: ["viewer"] })
    expect(await failure((c) => c.invitations.accept({ token: mailed }))).toBeInstanceOf(NotFound)
    expect(await failure((c) => c.invitations.create({ organizationId, email: uniqueEmail("no") }))).toSatisfy(
      (e: unknown) => e instanceof Forbidden && e.message.includes("members:invite")
    )

    token = owner.token
    const members = await client((c) => c.members.list({ organizationId }))
    expect(members.map((m) => m.userId)).toEqual([owner.userId, invitee.userId])
    const member = await roleId(organizationId, "member")
    const expiresAt = DateTime.unsafeMake(Date.now() + 3_600_000)
    const given = await client((c) =>
      c.assignments.create({
        organizationId,
        userId: invitee.userId,
        roleId: member,
        expiresAt,
        scope: { type: "doc", id: "7" }
      })
    )
    expect(BigInt(given.revision)).toBe(BigInt(joined.revision) + 1n)
    expect(given.assignment).toMatchObject({
      roleName: "member",
      scope: { type: "doc", id: "7" },
      grantedBy: owner.userId
    })
    const duplicate = await failure((c) =>
      c.assignments.create({ organizationId, userId: invitee.userId, roleId: member, scope: { type: "doc", id: "7" } })
    )
    expect(duplicate).toBeInstanceOf(Conflict)
    expect((duplicate as Conflict).code).toBe("already_assigned")
    expect(
      await failure((c) => c.assignments.create({ organizationId, userId: outsider.userId, roleId: member }))
    ).toBeInstanceOf(NotFound)
    const listed = await client((c) => c.assignments.list({ organizationId, userId: invitee.userId }))
    expect(listed.map((a) => a.roleName).sort()).toEqual(["member", "viewer"])
    const deleted = await client((c) => c.assignments.delete({ organizationId, assignmentId: given.assignment.id }))
    expect(deleted).toMatchObject({ deleted: true, revision: String(BigInt(given.revision) + 1n) })
    const ownerAssignment = (await client((c) => c.assignments.list({ organizationId, userId: owner.userId })))[0]!
    const lastOwner = await failure((c) => c.assignments.delete({ organizationId, assignmentId: ownerAssignment.id }))
    expect(lastOwner).toBeInstanceOf(Conflict)
    expect((lastOwner as Conflict).code).toBe("last_owner")

    const removed = await client((c) => c.members.remove({ organizationId, userId: invitee.userId }))
    expect(removed).toMatchObject({ removed: true, revision: String(BigInt(deleted.revision) + 1n) })
    token = invitee.token
    expect(await failure((c) => c.members.list({ organizationId }))).toBeInstanceOf(NotFound)
    token = owner.token
    expect(await failure((c) => c.members.remove({ organizationId, userId: invitee.userId }))).toBeInstanceOf(NotFound)
    const second = await client((c) => c.invitations.create({ organizationId, email: uniqueEmail("rpc-revoke") }))
    expect(
      await client((c) => c.invitations.revoke({ organizationId, invitationId: second.invitation.id }))
    ).toMatchObject({
      revoked: true
    })
    expect(
      await failure((c) => c.invitations.revoke({ organizationId, invitationId: second.invitation.id }))
    ).toBeInstanceOf(NotFound)
  })

  it("documents each endpoint's permission in the OpenAPI document", async () => {
    const spec = await openApi(server.url)
    const permission = (path: string, method: string) => spec.paths[path]?.[method]?.["x-required-permission"]
    expect(permission("/v1/orgs/{organizationId}/invitations", "post")).toBe("members:invite")
    expect(permission("/v1/orgs/{organizationId}/invitations", "get")).toBe("members:invite")
    expect(permission("/v1/orgs/{organizationId}/invitations/{invitationId}", "delete")).toBe("members:invite")
    expect(permission("/v1/orgs/{organizationId}/members", "get")).toBe("members:read")
    expect(permission("/v1/orgs/{organizationId}/members/{userId}", "delete")).toBe("members:remove")
    expect(permission("/v1/orgs/{organizationId}/assignments", "get")).toBe("assignments:read")
    expect(permission("/v1/orgs/{organizationId}/assignments", "post")).toBe("assignments:create")
    expect(permission("/v1/orgs/{organizationId}/assignments/{assignmentId}", "delete")).toBe("assignments:delete")
    expect(spec.paths["/v1/invitations/accept"]?.post).toBeDefined()
  })
})
