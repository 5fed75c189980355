import { describe, expect, it } from "vitest"
import {
  type Assignment,
  type CheckInput,
  type Condition,
  closure,
  covers,
  decide,
  evaluate,
  findCycle,
  type Grant,
  type Role
} from "../../src/domain/Decision.ts"

const NOW = Date.UTC(2026, 10, 22)
const allow = (permission: string, condition?: Condition): Grant => ({ permission, effect: "allow", condition })
const deny = (permission: string, condition?: Condition): Grant => ({ permission, effect: "deny", condition })
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
const check = (permission: string, extra: Partial<CheckInput> = {}): CheckInput => ({
  subject: { id: "u1" },
  permission,
  now: NOW,
  ...extra
})

describe("permission keys and wildcards", () => {
  it.each([
    ["*", "docs:read", true],
    ["docs:*", "docs:read", true],
    ["docs:*", "docs:write", true],
    ["docs:*", "documents:read", false],
    ["docs:read", "docs:read", true],
    ["docs:read", "docs:write", false],
    ["doc:*", "docs:read", false]
  ])("%s covers %s: %s", (pattern, permission, expected) => {
    expect(covers(pattern, permission)).toBe(expected)
  })

  it("denies a check that does not name a concrete key", () => {
    const roles = [role("owner", [allow("*")])]
    for (const permission of ["*", "docs:*", "Docs:read", "docs", ""]) {
      expect(decide(check(permission), roles, [assign("owner")]).allowed).toBe(false)
    }
  })
})

describe("roles, inheritance and assignments", () => {
  const roles = [
    role("viewer", [allow("docs:read")]),
    role("editor", [allow("docs:write")], ["viewer"]),
    role("lead", [allow("members:invite")], ["editor"]),
    role("auditor", [allow("audit:read")])
  ]

  it("gives a role its ancestors' grants along an inheritance chain", () => {
    const lead = [assign("lead")]
    expect(decide(check("docs:read"), roles, lead).allowed).toBe(true)
    expect(decide(check("docs:write"), roles, lead).allowed).toBe(true)
    expect(decide(check("members:invite"), roles, lead).allowed).toBe(true)
    expect(decide(check("audit:read"), roles, lead).allowed).toBe(false)
    expect(decide(check("docs:read"), roles, lead).reason).toBe(
      "allowed: allow docs:read from role viewer (inherited by lead)"
    )
  })

  it("does not give a parent its children's grants", () => {
    expect(decide(check("docs:write"), roles, [assign("viewer")]).allowed).toBe(false)
  })

  it("denies by default: no assignment, no grant, or a role that no longer exists", () => {
    expect(decide(check("docs:read"), roles, [])).toMatchObject({
      allowed: false,
      reason: "no grant allows it (default deny)"
    })
    expect(decide(check("billing:read"), roles, [assign("lead")]).allowed).toBe(false)
    expect(decide(check("docs:read"), roles, [assign("deleted-role")]).allowed).toBe(false)
  })

  it("counts a scoped assignment only for checks on that resource", () => {
    const scoped = [assign("editor", { scope: { type: "project", id: "42" } })]
    expect(decide(check("docs:write", { resource: { type: "project", id: "42" } }), roles, scoped).allowed).toBe(true)
    expect(decide(check("docs:write", { resource: { type: "project", id: "43" } }), roles, scoped).allowed).toBe(false)
    expect(decide(check("docs:write", { resource: { type: "team", id: "42" } }), roles, scoped).allowed).toBe(false)
    expect(decide(check("docs:write"), roles, scoped).allowed).toBe(false)
  })

  it("counts an organization-wide assignment for every resource", () => {
    expect(
      decide(check("docs:read", { resource: { type: "project", id: "7" } }), roles, [assign("viewer")]).allowed
    ).toBe(true)
  })

  it("ignores an assignment from the moment it expires", () => {
    const expiring = [assign("viewer", { expiresAt: NOW + 1000 })]
    expect(decide(check("docs:read"), roles, expiring).allowed).toBe(true)
    expect(decide(check("docs:read", { now: NOW + 999 }), roles, expiring).allowed).toBe(true)
    expect(decide(check("docs:read", { now: NOW + 1000 }), roles, expiring).allowed).toBe(false)
  })

  it("computes each role's closure through a diamond without repeats", () => {
    const diamond = [role("a", []), role("b", [], ["a"]), role("c", [], ["a"]), role("d", [], ["b", "c"])]
    expect([...(closure(diamond).get("d") ?? [])].sort()).toEqual(["a", "b", "c", "d"])
  })
})

describe("cycles", () => {
  const roles = [role("a", []), role("b", [], ["a"]), role("c", [], ["b"])]

  it("finds the cycle a new parent would make", () => {
    expect(findCycle(roles, "a", ["c"])).toEqual(["a", "c", "b", "a"])
    expect(findCycle(roles, "a", ["a"])).toEqual(["a", "a"])
  })

  it("accepts parents that keep the graph acyclic", () => {
    expect(findCycle(roles, "c", ["a"])).toBeUndefined()
    expect(findCycle([...roles, role("d", [])], "a", ["d"])).toBeUndefined()
  })

  it("still terminates on a stored cycle", () => {
    const cyclic = [role("x", [allow("docs:read")], ["y"]), role("y", [], ["x"])]
    expect(decide(check("docs:read"), cyclic, [assign("y")]).allowed).toBe(true)
  })
})

describe("deny wins", () => {
  it("over any allow, from any role, including a wildcard", () => {
    const roles = [role("owner", [allow("*")]), role("restricted", [deny("org:delete")])]
    const both = [assign("owner"), assign("restricted")]
    const decision = decide(check("org:delete"), roles, both)
    expect(decision.allowed).toBe(false)
    expect(decision.reason).toBe("denied: deny org:delete from role restricted")
    expect(decision.paths.map((p) => p.grant.effect).sort()).toEqual(["allow", "deny"])
    expect(decide(check("org:update"), roles, both).allowed).toBe(true)
  })

  it("when inherited, and when scoped to the resource checked", () => {
    const roles = [
      role("base", [deny("docs:*")]),
      role("child", [allow("docs:read")], ["base"]),
      role("reader", [allow("docs:read")])
    ]
    expect(decide(check("docs:read"), roles, [assign("child")]).allowed).toBe(false)
    const scopedDeny = [assign("reader"), { id: "d", roleId: "base", scope: { type: "project", id: "1" } }]
    expect(decide(check("docs:read", { resource: { type: "project", id: "1" } }), roles, scopedDeny).allowed).toBe(
      false
    )
    expect(decide(check("docs:read", { resource: { type: "project", id: "2" } }), roles, scopedDeny).allowed).toBe(true)
  })
})

describe("conditions", () => {
  const ownerOnly: Condition = { eq: [{ var: "resource.attributes.ownerId" }, { var: "subject.id" }] }
  const onDoc = (attributes?: Record<string, unknown>) =>
    check("docs:write", { resource: { type: "doc", id: "1", attributes } })

  it("allows when the condition holds, not when it fails or an attribute is missing", () => {
    const roles = [role("author", [allow("docs:write", ownerOnly)])]
    expect(decide(onDoc({ ownerId: "u1" }), roles, [assign("author")]).allowed).toBe(true)
    expect(decide(onDoc({ ownerId: "u2" }), roles, [assign("author")]).allowed).toBe(false)
    expect(decide(onDoc({}), roles, [assign("author")]).allowed).toBe(false)
    expect(decide(onDoc(), roles, [assign("author")]).allowed).toBe(false)
    expect(decide(check("docs:write"), roles, [assign("author")]).allowed).toBe(false)
  })

  it("does not turn a missing attribute into true with not", () => {
    const notOwner: Condition = { not: ownerOnly }
    expect(evaluate(notOwner, onDoc({}))).toBeUndefined()
    const roles = [role("r", [allow("docs:write", notOwner)])]
    expect(decide(onDoc({}), roles, [assign("r")]).allowed).toBe(false)
    expect(decide(onDoc({ ownerId: "u2" }), roles, [assign("r")]).allowed).toBe(true)
  })

  it("keeps a conditional deny in force when its condition cannot be decided", () => {
    const locked: Condition = { eq: [{ var: "resource.attributes.locked" }, true] }
    const roles = [role("r", [allow("docs:write"), deny("docs:write", locked)])]
    expect(decide(onDoc({ locked: false }), roles, [assign("r")]).allowed).toBe(true)
    expect(decide(onDoc({ locked: true }), roles, [assign("r")]).allowed).toBe(false)
    expect(decide(onDoc({}), roles, [assign("r")]).allowed).toBe(false)
  })

  it.each<[string, Condition, Record<string, unknown>, boolean | undefined]>([
    ["eq of literals", { eq: [1, 1] }, {}, true],
    ["ne", { ne: [{ var: "resource.attributes.state" }, "archived"] }, { state: "draft" }, true],
    [
      "in a literal list",
      { in: [{ var: "resource.attributes.state" }, ["draft", "review"]] },
      { state: "review" },
      true
    ],
    ["in, absent", { in: [{ var: "resource.attributes.state" }, ["draft"]] }, { state: "final" }, false],
    ["and with a false", { and: [{ eq: [1, 1] }, { eq: [1, 2] }] }, {}, false],
    ["and with unknown", { and: [{ eq: [1, 1] }, { eq: [{ var: "resource.attributes.x" }, 1] }] }, {}, undefined],
    ["or with one true", { or: [{ eq: [{ var: "resource.attributes.x" }, 1] }, { eq: [2, 2] }] }, {}, true],
    ["nested attribute", { eq: [{ var: "resource.attributes.team.id" }, "t1"] }, { team: { id: "t1" } }, true],
    [
      "objects never compare equal",
      { eq: [{ var: "resource.attributes.team" }, { var: "resource.attributes.team" }] },
      { team: {} },
      false
    ],
    ["prototype keys are not attributes", { eq: [{ var: "resource.attributes.constructor" }, null] }, {}, undefined],
    ["unknown roots are unknown", { eq: [{ var: "process.env.HOME" }, "/root"] }, {}, undefined]
  ])("%s", (_name, condition, attributes, expected) => {
    expect(evaluate(condition, check("docs:read", { resource: { type: "doc", id: "1", attributes } }))).toBe(expected)
  })
})
