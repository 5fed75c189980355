import { describe, expect, it } from "vitest"
import type { Assignment, Condition, Grant, Role } from "../../src/domain/Decision.ts"
import {
  accessOf,
  dependsOnTime,
  effectiveOf,
  firstNotHeld,
  judge,
  makePolicy,
  rolesHeld,
  type Standing
} from "../../src/domain/Policy.ts"

const NOW = Date.UTC(2026, 10, 22)
const CATALOG = ["docs:read", "docs:write", "docs:delete", "org:read", "org:delete"]
const OWN: Condition = { eq: [{ var: "resource.attributes.ownerId" }, { var: "subject.id" }] }
const allow = (permission: string, condition?: Condition): Grant => ({ permission, effect: "allow", condition })
const deny = (permission: string): Grant => ({ permission, effect: "deny" })
const role = (id: string, grants: Array<Grant>, parents: Array<string> = []): Role => ({
  id,
  name: id,
  parents,
  grants
})
const assign = (roleId: string, extra: Partial<Assignment> = {}): Assignment => ({
  id: `a-${roleId}`,
  roleId,
  ...extra
})

const policy = makePolicy(
  [
    role("reader", [allow("docs:read"), allow("org:read")]),
    role("writer", [allow("docs:write"), allow("docs:delete", OWN)], ["reader"]),
    role("no-delete", [deny("docs:delete"), deny("docs:read")]),
    role("boss", [allow("*")]),
    role("docs-admin", [allow("docs:*")])
  ],
  CATALOG
)
const standing = (assignments: Array<Assignment>, extra: Partial<Standing> = {}): Standing => ({
  member: true,
  enabled: true,
  assignments,
  ...extra
})
const input = (permission: string) => ({ subject: { id: "u1" }, permission, now: NOW })

describe("judging a check by standing, then roles", () => {
  it("refuses everything in a frozen organization and to a disabled user (blocked), and to a non-member", () => {
    const writer = [assign("writer")]
    expect(judge(policy, true, standing(writer), input("docs:read"))).toEqual({
      allowed: false,
      reason: "the organization is frozen",
      blocked: true,
      decision: undefined
    })
    expect(judge(policy, false, standing(writer, { enabled: false }), input("docs:read"))).toMatchObject({
      allowed: false,
      reason: "the user is disabled",
      blocked: true
    })
    expect(judge(policy, false, standing(writer, { member: false }), input("docs:read"))).toMatchObject({
      allowed: false,
      reason: "not a member of the organization",
      blocked: false
    })
    expect(accessOf(true, standing(writer, { enabled: false }))).toBe("frozen")
    expect(accessOf(false, standing(writer, { enabled: false, member: false }))).toBe("disabled")
  })

  it("decides a member's check on their roles, inherited grants included, with the paths", () => {
    const judgement = judge(policy, false, standing([assign("writer")]), input("docs:read"))
    expect(judgement).toMatchObject({ allowed: true, blocked: false })
    expect(judgement.decision?.paths).toEqual([
      { assignmentId: "a-writer", roleId: "writer", viaRoleId: "reader", grant: allow("docs:read"), scope: undefined }
    ])
    expect(judge(policy, false, standing([]), input("docs:read"))).toMatchObject({
      allowed: false,
      reason: "no grant allows it (default deny)"
    })
  })
})

describe("the effective set", () => {
  it("lists the catalog keys allowed organization-wide, leaving out conditional grants", () => {
    expect(effectiveOf(policy, "u1", [assign("writer")], NOW)).toEqual({
      permissions: ["docs:read", "docs:write", "org:read"],
      scoped: {},
      scopedDenied: {}
    })
  })

  it("lists what a scoped assignment adds on its resource, and what a scoped deny takes away there", () => {
    const project = { type: "project", id: "7" }
    const folder = { type: "folder", id: "f" }
    const set = effectiveOf(
      policy,
      "u1",
      [assign("reader"), assign("docs-admin", { scope: project }), assign("no-delete", { scope: folder })],
      NOW
    )
    expect(set.permissions).toEqual(["docs:read", "org:read"])
    expect(set.scoped).toEqual({ "project/7": ["docs:write", "docs:delete"] })
    expect(set.scopedDenied).toEqual({ "folder/f": ["docs:read"] })
  })

  it("drops an assignment from its expiry instant on; such a set depends on the time", () => {
    const assignments = [assign("reader", { expiresAt: NOW + 1 })]
    expect(effectiveOf(policy, "u1", assignments, NOW).permissions).toEqual(["docs:read", "org:read"])
    expect(effectiveOf(policy, "u1", assignments, NOW + 1).permissions).toEqual([])
    expect(dependsOnTime(assignments)).toBe(true)
    expect(dependsOnTime([assign("reader")])).toBe(false)
  })
})

describe("the roles a session follows", () => {
  it("names unexpired organization-wide roles, sorted, and follows every assigned role with its ancestors", () => {
    const held = rolesHeld(
      policy,
      [
        assign("writer"),
        assign("boss", { expiresAt: NOW }),
        assign("docs-admin", { scope: { type: "project", id: "1" } }),
        assign("deleted-role")
      ],
      NOW
    )
    expect(held.roles).toEqual(["deleted-role", "writer"])
    expect(new Set(held.roleIds)).toEqual(new Set(["writer", "reader", "boss", "docs-admin", "deleted-role"]))
  })
})

describe("privilege escalation", () => {
  const holding = (assignments: Array<Assignment>) => (permission: string) =>
    judge(policy, false, standing(assignments), input(permission)).allowed

  it("names the first permission a role or pattern would give that the actor lacks", () => {
    const reader = holding([assign("reader")])
    expect(firstNotHeld(policy, { roleIds: ["reader"] }, reader)).toBeUndefined()
    // The writer role brings its parent's grants and its own.
    expect(firstNotHeld(policy, { roleIds: ["writer"] }, reader)).toBe("docs:write")
    expect(firstNotHeld(policy, { patterns: ["org:delete"] }, reader)).toBe("org:delete")
    // Denies are not given, so they need nothing.
    expect(firstNotHeld(policy, { roleIds: ["no-delete"] }, reader)).toBeUndefined()
  })

  it("requires a wildcard itself for a wildcard, not only every key it covers today", () => {
    const allDocsKeys = holding([assign("writer"), assign("docs-admin")])
    expect(firstNotHeld(policy, { patterns: ["docs:*"] }, allDocsKeys)).toBeUndefined()
    expect(firstNotHeld(policy, { patterns: ["docs:*"] }, holding([assign("writer")]))).toBe("docs:*")
    expect(firstNotHeld(policy, { roleIds: ["boss"] }, allDocsKeys)).toBe("*")
    expect(firstNotHeld(policy, { roleIds: ["boss"] }, holding([assign("boss")]))).toBeUndefined()
  })
})
