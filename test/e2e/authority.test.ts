/**
 * Who may change whose access, end to end on Postgres and Redis through both doors: a table of
 * actors (owner, admin, a custom manager with roles:* and assignments:*, a member) and actions
 * (give an allow, give a deny, deny an owner, edit a system role, take access away, lift a deny),
 * and the scenarios of issue 12 items 1 and 5.
 */
import { DateTime, Effect, Either } from "effect"
import { beforeAll, describe, expect, it } from "vitest"
import { ApiClient } from "../../src/rpc/client.ts"
import type { Reply } from "../support/AuthClient.ts"
import { e2e } from "../support/E2e.ts"
import { invitationToken, type User } from "../support/Tenant.ts"

type Outcome = "ok" | "403" | "404" | "409"
type Door = "http" | "rpc"

const STATUS: Record<string, Outcome> = { Forbidden: "403", NotFound: "404", Conflict: "409" }

interface World {
  readonly organizationId: string
  readonly path: string
  readonly role: Record<string, string>
  /** The second owner's assignment of the owner role. */
  readonly owner2Assignment: string
  /** The target's assignment of "No invites" (a deny the owner set). */
  readonly targetDeny: string
}

describe("who may change whose access, end to end (S44, S45, S46)", () => {
  const { api, rpc, node, signUp, createOrganization, addMember } = e2e()
  const users: Record<"owner" | "owner2" | "admin" | "manager" | "member" | "target", User> = {} as never

  beforeAll(async () => {
    for (const name of ["owner", "owner2", "admin", "manager", "member", "target"] as const) {
      users[name] = await signUp(`authority-${name}`)
    }
  }, 120_000)

  const call = <A = Record<string, unknown>>(method: string, path: string, token: string, body?: unknown) =>
    api.call<A>(method, path, body === undefined ? { token } : { token, body })

  const created = async <A>(reply: Promise<Reply<A>>) => {
    const answer = await reply
    expect(answer.status, JSON.stringify(answer.body)).toBeLessThan(300)
    return answer.body
  }

  /** An organization of `owner` with a second owner, an admin, a manager, a member and a target. */
  const world = async (): Promise<World> => {
    const { owner } = users
    const organizationId = await createOrganization(owner, "authority")
    const path = `/v1/orgs/${organizationId}`
    await addMember(organizationId, users.owner2.userId, "owner")
    await addMember(organizationId, users.admin.userId, "admin")
    await addMember(organizationId, users.manager.userId, "viewer")
    await addMember(organizationId, users.member.userId, "member")
    await addMember(organizationId, users.target.userId, "viewer")
    const make = async (name: string, grants: Array<[string, "allow" | "deny"]>) =>
      (
        await created(
          call<{ role: { id: string } }>("POST", `${path}/roles`, owner.token, {
            name,
            grants: grants.map(([permission, effect]) => ({ permission, effect }))
          })
        )
      ).role.id
    const allow = (permission: string): [string, "allow"] => [permission, "allow"]
    const role: Record<string, string> = {
      managers: await make("Managers", ["roles:*", "assignments:*", "org:read", "members:read"].map(allow)),
      readers: await make("Readers", [allow("members:read")]),
      noAudit: await make("No audit", [["audit:read", "deny"]]),
      noInvites: await make("No invites", [["members:invite", "deny"]]),
      lockout: await make("Lockout", [["*", "deny"]])
    }
    const listed = await created(call<Array<{ id: string; name: string }>>("GET", `${path}/roles`, owner.token))
    for (const { id, name } of listed) role[name] = id
    const assign = (userId: string, roleId: string) =>
      created(call<{ assignment: { id: string } }>("POST", `${path}/assignments`, owner.token, { userId, roleId }))
    await assign(users.manager.userId, role.managers!)
    const targetDeny = (await assign(users.target.userId, role.noInvites!)).assignment.id
    const owner2 = await created(
      call<Array<{ id: string; roleName: string }>>(
        "GET",
        `${path}/assignments?userId=${users.owner2.userId}`,
        owner.token
      )
    )
    return { organizationId, path, role, owner2Assignment: owner2.find((a) => a.roleName === "owner")!.id, targetDeny }
  }

  /** One request through the chosen door: "ok", or the status its typed error stands for. */
  const through = async (
    door: Door,
    token: string,
    http: { method: string; path: string; body?: unknown },
    viaRpc: (c: ApiClient["Type"]) => Effect.Effect<unknown, unknown>
  ): Promise<Outcome> => {
    if (door === "http") {
      const reply = await call(http.method, http.path, token, http.body)
      return reply.status < 300 ? "ok" : (String(reply.status) as Outcome)
    }
    const result = await rpc(token)(Effect.either(Effect.flatMap(ApiClient, viaRpc)))
    if (Either.isRight(result)) return "ok"
    return STATUS[(result.left as { _tag: string })._tag] ?? (String((result.left as { _tag: string })._tag) as Outcome)
  }

  const actions = {
    "give an allow to a member": (w: World, door: Door, token: string) =>
      through(
        door,
        token,
        {
          method: "POST",
          path: `${w.path}/assignments`,
          body: { userId: users.target.userId, roleId: w.role.readers }
        },
        (c) =>
          c.assignments.create({
            organizationId: w.organizationId,
            userId: users.target.userId,
            roleId: w.role.readers!
          })
      ),
    "give a deny to a member": (w: World, door: Door, token: string) =>
      through(
        door,
        token,
        {
          method: "POST",
          path: `${w.path}/assignments`,
          body: { userId: users.target.userId, roleId: w.role.noAudit }
        },
        (c) =>
          c.assignments.create({
            organizationId: w.organizationId,
            userId: users.target.userId,
            roleId: w.role.noAudit!
          })
      ),
    "give deny * to an owner": (w: World, door: Door, token: string) =>
      through(
        door,
        token,
        {
          method: "POST",
          path: `${w.path}/assignments`,
          body: { userId: users.owner2.userId, roleId: w.role.lockout }
        },
        (c) =>
          c.assignments.create({
            organizationId: w.organizationId,
            userId: users.owner2.userId,
            roleId: w.role.lockout!
          })
      ),
    "edit the admin system role to deny *": (w: World, door: Door, token: string) =>
      through(
        door,
        token,
        {
          method: "PUT",
          path: `${w.path}/roles/${w.role.admin}/grants`,
          body: { grants: [{ permission: "*", effect: "deny" }] }
        },
        (c) =>
          c.roles.setGrants({
            organizationId: w.organizationId,
            roleId: w.role.admin!,
            grants: [{ permission: "*", effect: "deny" }]
          })
      ),
    "take the owner role from the second owner": (w: World, door: Door, token: string) =>
      through(door, token, { method: "DELETE", path: `${w.path}/assignments/${w.owner2Assignment}` }, (c) =>
        c.assignments.delete({ organizationId: w.organizationId, assignmentId: w.owner2Assignment })
      ),
    "remove the second owner": (w: World, door: Door, token: string) =>
      through(door, token, { method: "DELETE", path: `${w.path}/members/${users.owner2.userId}` }, (c) =>
        c.members.remove({ organizationId: w.organizationId, userId: users.owner2.userId })
      ),
    "lift a deny the owner set on a member": (w: World, door: Door, token: string) =>
      through(door, token, { method: "DELETE", path: `${w.path}/assignments/${w.targetDeny}` }, (c) =>
        c.assignments.delete({ organizationId: w.organizationId, assignmentId: w.targetDeny })
      )
  }

  //                                              owner  admin  manager member
  const table: Record<keyof typeof actions, [Outcome, Outcome, Outcome, Outcome]> = {
    "give an allow to a member": ["ok", "ok", "ok", "403"],
    "give a deny to a member": ["ok", "403", "403", "403"],
    "give deny * to an owner": ["403", "403", "403", "403"],
    "edit the admin system role to deny *": ["409", "409", "409", "403"],
    "take the owner role from the second owner": ["ok", "403", "403", "403"],
    "remove the second owner": ["ok", "403", "403", "403"],
    "lift a deny the owner set on a member": ["ok", "ok", "403", "403"]
  }
  const actors = ["owner", "admin", "manager", "member"] as const

  const rows = (["http", "rpc"] as const).flatMap((door) =>
    (Object.keys(table) as Array<keyof typeof actions>).map((action) => [door, action] as const)
  )

  it.each(rows)(
    "through %s: who may %s (S44, S45)",
    async (door, action) => {
      const outcomes: Array<Outcome> = []
      for (const actor of actors) {
        const w = await world()
        outcomes.push(await actions[action](w, door, users[actor].token))
        // Whatever a non-owner did, the owner still reads and repairs the organization.
        expect((await call("GET", w.path, users.owner.token)).status).toBe(200)
        expect((await call("GET", `${w.path}/roles`, users.owner.token)).status).toBe(200)
      }
      expect(Object.fromEntries(actors.map((actor, i) => [actor, outcomes[i]]))).toEqual(
        Object.fromEntries(actors.map((actor, i) => [actor, table[action][i]]))
      )
    },
    120_000
  )

  it("an admin cannot lock the owner out with a role granting deny *, nor by editing a role to it (S44, S45)", async () => {
    const w = await world()
    const admin = users.admin.token
    const createdByAdmin = await call<{ message: string }>("POST", `${w.path}/roles`, admin, {
      name: "Admin lockout",
      grants: [{ permission: "*", effect: "deny" }]
    })
    expect(createdByAdmin.status).toBe(403)
    expect(createdByAdmin.body.message).toBe("Only an owner can add a deny (deny *)")
    const empty = await created(call<{ role: { id: string } }>("POST", `${w.path}/roles`, admin, { name: "Empty" }))
    const edited = await call<{ message: string }>("PUT", `${w.path}/roles/${empty.role.id}/grants`, admin, {
      grants: [{ permission: "*", effect: "deny" }]
    })
    expect(edited.status).toBe(403)
    const toOwner = await call<{ message: string }>("POST", `${w.path}/assignments`, admin, {
      userId: users.owner.userId,
      roleId: w.role.lockout
    })
    expect(toOwner.status).toBe(403)
    expect(toOwner.body.message).toBe("Only an owner can change an owner's access")
    // The owner still reads, repairs (the deny role goes) and could delete the organization.
    expect((await call("GET", w.path, users.owner.token)).status).toBe(200)
    expect((await call("DELETE", `${w.path}/roles/${w.role.lockout}`, users.owner.token)).status).toBe(200)
  }, 60_000)

  it("a member cannot delete their own assignment of a role whose deny the owner set on them (S44)", async () => {
    const w = await world()
    const { owner, member } = users
    const selfService = await created(
      call<{ role: { id: string } }>("POST", `${w.path}/roles`, owner.token, {
        name: "Self service",
        grants: ["assignments:read", "assignments:delete"].map((permission) => ({ permission, effect: "allow" }))
      })
    )
    const noMembers = await created(
      call<{ role: { id: string } }>("POST", `${w.path}/roles`, owner.token, {
        name: "No member list",
        grants: [{ permission: "members:read", effect: "deny" }]
      })
    )
    await created(
      call("POST", `${w.path}/assignments`, owner.token, { userId: member.userId, roleId: selfService.role.id })
    )
    const denied = await created(
      call<{ assignment: { id: string } }>("POST", `${w.path}/assignments`, owner.token, {
        userId: member.userId,
        roleId: noMembers.role.id
      })
    )
    expect((await call("GET", `${w.path}/members`, member.token)).status).toBe(403)
    const lifted = await call<{ message: string }>(
      "DELETE",
      `${w.path}/assignments/${denied.assignment.id}`,
      member.token
    )
    expect(lifted.status).toBe(403)
    expect(lifted.body.message).toBe("You cannot remove a deny that applies to you")
    expect((await call("GET", `${w.path}/members`, member.token)).status).toBe(403)
  }, 60_000)

  it("a temporary admin cannot make their admin permanent, on the organization or on a scope (S46)", async () => {
    const w = await world()
    const { owner, member } = users
    const until = DateTime.unsafeMake(Date.now() + 3_600_000)
    const iso = DateTime.formatIso(until)
    await created(
      call("POST", `${w.path}/assignments`, owner.token, {
        userId: member.userId,
        roleId: w.role.admin,
        expiresAt: iso
      })
    )
    const badge = await created(
      call<{ role: { id: string } }>("POST", `${w.path}/roles`, owner.token, { name: "Badge" })
    )
    await created(call("POST", `${w.path}/assignments`, owner.token, { userId: member.userId, roleId: badge.role.id }))

    // Preparing a role held by nobody is fine: giving it is what is bounded.
    const forever = await created(
      call<{ role: { id: string } }>("POST", `${w.path}/roles`, member.token, {
        name: "Forever",
        parentIds: [w.role.admin]
      })
    )
    const give = (body: Record<string, unknown>) =>
      call<{ message: string }>("POST", `${w.path}/assignments`, member.token, {
        userId: member.userId,
        roleId: forever.role.id,
        ...body
      })
    const permanent = await give({})
    expect(permanent.status).toBe(403)
    expect(permanent.body.message).toMatch(/ for ever: you hold it only until \S+; set an expiry no later than that$/)
    expect((await give({ scope: { type: "project", id: "p1" } })).status).toBe(403)
    expect((await give({ expiresAt: DateTime.formatIso(DateTime.add(until, { minutes: 1 })) })).status).toBe(403)
    const viaRpc = await rpc(member.token)(
      Effect.either(
        Effect.flatMap(ApiClient, (c) =>
          c.assignments.create({ organizationId: w.organizationId, userId: member.userId, roleId: forever.role.id })
        )
      )
    )
    expect(Either.isLeft(viaRpc) && viaRpc.left).toMatchObject({ _tag: "Forbidden", code: "forbidden" })
    // A role the member holds for ever cannot be made to give what they hold until T.
    const parents = await call("PUT", `${w.path}/roles/${badge.role.id}/parents`, member.token, {
      parentIds: [forever.role.id]
    })
    expect(parents.status).toBe(403)
    const grants = await call("PUT", `${w.path}/roles/${badge.role.id}/grants`, member.token, {
      grants: [{ permission: "roles:update", effect: "allow" }]
    })
    expect(grants.status).toBe(403)
    // Until T or earlier, it is theirs to give.
    expect((await give({ expiresAt: DateTime.formatIso(DateTime.subtract(until, { minutes: 1 })) })).status).toBe(201)
  }, 60_000)

  it("authority held on one resource is given on that resource only (S46)", async () => {
    const w = await world()
    const { owner, member, target } = users
    const assigner = await created(
      call<{ role: { id: string } }>("POST", `${w.path}/roles`, owner.token, {
        name: "Assigner",
        grants: [{ permission: "assignments:create", effect: "allow" }]
      })
    )
    await created(
      call("POST", `${w.path}/assignments`, owner.token, { userId: member.userId, roleId: assigner.role.id })
    )
    await created(
      call("POST", `${w.path}/assignments`, owner.token, {
        userId: member.userId,
        roleId: w.role.admin,
        scope: { type: "project", id: "p1" }
      })
    )
    const give = (scope?: { type: string; id: string }) =>
      call<{ message: string }>("POST", `${w.path}/assignments`, member.token, {
        userId: target.userId,
        roleId: w.role.managers,
        ...(scope === undefined ? {} : { scope })
      })
    expect((await give({ type: "project", id: "p1" })).status).toBe(201)
    const elsewhere = await give({ type: "project", id: "p2" })
    expect(elsewhere.status).toBe(403)
    expect(elsewhere.body.message).toMatch(/ on project\/p2: you do not hold it there$/)
    expect((await give()).status).toBe(403)
  }, 60_000)

  it("an invitation gives only the roles its sender may still give when it is accepted (S46)", async () => {
    const w = await world()
    const { owner, admin } = users
    const newcomer = await signUp("authority-newcomer")
    const invited = await call("POST", `${w.path}/invitations`, admin.token, {
      email: newcomer.email,
      roleIds: [w.role.readers]
    })
    expect(invited.status).toBe(201)
    const adminRole = await created(
      call<Array<{ id: string; roleName: string }>>("GET", `${w.path}/assignments?userId=${admin.userId}`, owner.token)
    )
    await created(
      call("DELETE", `${w.path}/assignments/${adminRole.find((a) => a.roleName === "admin")!.id}`, owner.token)
    )
    const { token } = await invitationToken(node.dataDir, newcomer.email)
    const joined = await call<{ roles: Array<string> }>("POST", "/v1/invitations/accept", newcomer.token, { token })
    expect(joined.status).toBe(200)
    expect(joined.body.roles).toEqual([])
    expect((await call("GET", `${w.path}/members`, newcomer.token)).status).toBe(403)
  }, 60_000)
})
