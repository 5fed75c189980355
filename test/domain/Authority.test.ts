import { describe, expect, it } from "vitest"
import {
  grantsOfRoles,
  type Held,
  type Organization,
  refuseAssign,
  refuseRemoveMember,
  refuseRoleChange,
  refuseUnassign
} from "../../src/domain/Authority.ts"
import type { Grant, Role } from "../../src/domain/Decision.ts"
import { makePolicy } from "../../src/domain/Policy.ts"

const NOW = Date.UTC(2026, 11, 5)
const HOUR = 3_600_000
const CATALOG = ["org:read", "org:delete", "roles:read", "roles:update", "assignments:create", "docs:read", "docs:edit"]
const allow = (permission: string): Grant => ({ permission, effect: "allow" })
const deny = (permission: string): Grant => ({ permission, effect: "deny" })
const role = (id: string, grants: Array<Grant>, parents: Array<string> = []): Role => ({
  id,
  name: id,
  parents,
  grants
})

const ROLES = [
  role("owner", [allow("*")]),
  role("admin", ["org:read", "roles:*", "assignments:*", "docs:*"].map(allow)),
  role("editor", [allow("docs:read"), allow("docs:edit")]),
  role("no-edit", [deny("docs:edit")]),
  role("lockout", [deny("*")]),
  role("child", [], ["admin"])
]

let n = 0
const held = (userId: string, roleId: string, extra: Partial<Held> = {}): Held => ({
  id: `a${++n}`,
  userId,
  roleId,
  ...extra
})

const organization = (assignments: Array<Held>, roles = ROLES): Organization => ({
  policy: makePolicy(roles, CATALOG),
  ownerRoleId: "owner",
  systemRoleIds: new Set(["owner", "admin"]),
  assignments,
  now: NOW
})

describe("who may change whose access (S44, S45)", () => {
  const base = [held("o", "owner"), held("o2", "owner"), held("a", "admin"), held("m", "editor")]
  const org = organization(base)

  it("an owner's assignments and membership change only by an owner (S45)", () => {
    expect(refuseAssign(org, "a", { userId: "o", roleId: "editor" })?.message).toBe(
      "Only an owner can change an owner's access"
    )
    expect(refuseUnassign(org, "a", base[1]!)?.message).toBe("Only an owner can change an owner's access")
    expect(refuseRemoveMember(org, "a", "o2")?.message).toBe("Only an owner can change an owner's access")
    expect(refuseRemoveMember(org, "o", "o2")).toBeUndefined()
    expect(refuseAssign(org, "a", { userId: "m", roleId: "owner" })?.message).toBe(
      "You cannot give *: you do not hold it"
    )
  })

  it("only an owner adds a deny, and never onto an owner (S44)", () => {
    expect(refuseAssign(org, "a", { userId: "m", roleId: "no-edit" })?.message).toMatch(/^Only an owner can add a deny/)
    expect(refuseAssign(org, "o", { userId: "m", roleId: "no-edit" })).toBeUndefined()
    expect(refuseAssign(org, "o", { userId: "o2", roleId: "lockout" })?.message).toBe(
      "A deny is never given to an owner"
    )
    // In a role: created with one, or written into one someone holds.
    expect(refuseRoleChange(org, "a", undefined, [], [deny("*")])?.message).toMatch(/^Only an owner can add a deny/)
    const editor = { id: "editor", name: "editor" }
    const editorGrants = grantsOfRoles(org.policy, ["editor"])
    expect(refuseRoleChange(org, "a", editor, editorGrants, [...editorGrants, deny("docs:read")])?.kind).toBe(
      "forbidden"
    )
    expect(refuseRoleChange(org, "o", editor, editorGrants, [...editorGrants, deny("docs:read")])).toBeUndefined()
    const withOwner = organization([...base, held("o", "editor")])
    expect(refuseRoleChange(withOwner, "o", editor, editorGrants, [deny("docs:read")])?.message).toBe(
      "A deny is never given to an owner: an owner holds editor"
    )
  })

  it("nobody but an owner lifts a deny that applies to them; lifting another's needs what it denies (S44)", () => {
    const denied = held("m", "no-edit")
    const org2 = organization([...base, denied, held("a", "no-edit")])
    expect(refuseUnassign(org2, "m", denied)?.message).toBe("You cannot remove a deny that applies to you")
    const noEdit = { id: "no-edit", name: "no-edit" }
    expect(refuseRoleChange(org2, "a", noEdit, [deny("docs:edit")], [])?.message).toBe(
      "You cannot remove a deny that applies to you"
    )
    // Nor by dropping the parent that carries it from a role they hold.
    const inherits = organization(
      [...base, held("m", "restricted")],
      [...ROLES, role("restricted", [allow("docs:read")], ["no-edit"])]
    )
    const restricted = { id: "restricted", name: "restricted" }
    const before = grantsOfRoles(inherits.policy, ["restricted"])
    expect(refuseRoleChange(inherits, "m", restricted, before, [allow("docs:read")])?.message).toBe(
      "You cannot remove a deny that applies to you"
    )
    // The admin holds docs:edit, and the deny is not on them: they may lift it from the member.
    const org3 = organization([...base, denied])
    expect(refuseUnassign(org3, "a", denied)).toBeUndefined()
    expect(refuseUnassign(org3, "o", denied)).toBeUndefined()
    // A deny of everything is lifted only by someone holding everything.
    const locked = held("m", "lockout")
    expect(refuseUnassign(organization([...base, locked]), "a", locked)?.message).toBe(
      "You cannot lift a deny on *: you do not hold it"
    )
  })

  it("nobody takes away more than they could give; giving up one's own allows is free (S44)", () => {
    const viewer = organization([...base, held("v", "editor"), held("w", "admin")], ROLES)
    const adminOfW = held("w", "admin")
    const orgW = organization([...base, held("v", "editor"), adminOfW])
    expect(refuseUnassign(orgW, "v", adminOfW)?.message).toMatch(/^You cannot take away org:read: you do not hold it$/)
    expect(refuseUnassign(orgW, "w", adminOfW)).toBeUndefined()
    expect(refuseRemoveMember(viewer, "m", "w")?.message).toMatch(/^You cannot take away /)
    expect(refuseRemoveMember(viewer, "a", "w")).toBeUndefined()
  })
})

describe("delegation never outlives or outgrows its source (S46)", () => {
  const until = NOW + HOUR
  const temporary = organization([held("o", "owner"), held("t", "admin", { expiresAt: until }), held("m", "editor")])

  it("an assignment made through a privilege ending at T ends at T or earlier", () => {
    expect(refuseAssign(temporary, "t", { userId: "t", roleId: "child" })?.message).toMatch(
      /^You cannot give .+ for ever: you hold it only until 2026-12-05T01:00:00.000Z/
    )
    expect(refuseAssign(temporary, "t", { userId: "m", roleId: "editor", expiresAt: until + 1 })?.message).toMatch(
      /until 2026-12-05T01:00:00.001Z: you hold it only until/
    )
    expect(refuseAssign(temporary, "t", { userId: "m", roleId: "editor", expiresAt: until })).toBeUndefined()
    // A scope does not lift the bound.
    expect(
      refuseAssign(temporary, "t", { userId: "t", roleId: "child", scope: { type: "project", id: "p1" } })
    ).toBeDefined()
  })

  it("allows added to a role last no longer than the giver's hold, for every holder", () => {
    const withHolder = organization([
      held("o", "owner"),
      held("t", "admin", { expiresAt: until }),
      held("m", "editor"),
      held("t", "editor")
    ])
    const editor = { id: "editor", name: "editor" }
    const before = grantsOfRoles(withHolder.policy, ["editor"])
    expect(refuseRoleChange(withHolder, "t", editor, before, [...before, allow("roles:update")])?.message).toMatch(
      /^You cannot give roles:update for ever: you hold it only until/
    )
    // A new role is held by nobody: preparing it is fine; giving it is what is bounded.
    expect(
      refuseRoleChange(withHolder, "t", undefined, [], grantsOfRoles(withHolder.policy, ["admin"]))
    ).toBeUndefined()
  })

  it("authority held on a scope is given on that scope only", () => {
    const scoped = organization([
      held("o", "owner"),
      held("s", "admin", { scope: { type: "project", id: "p1" } }),
      held("s", "editor"),
      held("m", "editor")
    ])
    const onP1 = { type: "project", id: "p1" }
    expect(refuseAssign(scoped, "s", { userId: "m", roleId: "admin", scope: onP1 })).toBeUndefined()
    expect(
      refuseAssign(scoped, "s", { userId: "m", roleId: "admin", scope: { type: "project", id: "p2" } })?.message
    ).toMatch(/ on project\/p2: you do not hold it there$/)
    expect(refuseAssign(scoped, "s", { userId: "m", roleId: "admin" })?.message).toMatch(/you do not hold it$/)
  })
})
