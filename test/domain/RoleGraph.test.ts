import { describe, expect, it } from "vitest"
import { closure, type Grant } from "../../src/domain/Decision.ts"
import { allowPatterns, assembleRoles, cycleIfParents, uniqueGrants } from "../../src/domain/RoleGraph.ts"

const named = (...ids: Array<string>) => ids.map((id) => ({ id, name: `role ${id}` }))
const allow = (permission: string): Grant => ({ permission, effect: "allow" })

describe("assembling roles from rows", () => {
  it("gives each role its parents and grants in the order stored, and nothing to a role without rows", () => {
    const roles = assembleRoles(
      named("a", "b", "c"),
      [
        { roleId: "c", parentId: "b" },
        { roleId: "c", parentId: "a" },
        { roleId: "b", parentId: "a" }
      ],
      [
        { roleId: "a", ...allow("docs:read") },
        { roleId: "c", permission: "docs:write", effect: "deny", condition: { eq: [{ var: "subject.id" }, "u1"] } },
        { roleId: "a", ...allow("docs:*") }
      ]
    )
    expect(roles).toEqual([
      { id: "a", name: "role a", parents: [], grants: [allow("docs:read"), allow("docs:*")] },
      { id: "b", name: "role b", parents: ["a"], grants: [] },
      {
        id: "c",
        name: "role c",
        parents: ["b", "a"],
        grants: [{ permission: "docs:write", effect: "deny", condition: { eq: [{ var: "subject.id" }, "u1"] } }]
      }
    ])
    expect(closure(roles).get("c")).toEqual(expect.arrayContaining(["a", "b", "c"]))
  })

  it("keeps a link to a role that is not there (deleted): it grants nothing", () => {
    const roles = assembleRoles(named("a"), [{ roleId: "a", parentId: "gone" }])
    expect(roles[0]!.parents).toEqual(["gone"])
    expect(closure(roles).get("a")).toEqual(["a"])
  })
})

describe("cycles named for people", () => {
  const graph = assembleRoles(named("a", "b", "c"), [
    { roleId: "b", parentId: "a" },
    { roleId: "c", parentId: "b" }
  ])

  it.each([
    ["a", ["c"], ["role a", "role c", "role b", "role a"]],
    ["a", ["b"], ["role a", "role b", "role a"]],
    ["b", ["b"], ["role b", "role b"]]
  ])("%s with parents %j makes %j", (roleId, parents, cycle) => {
    expect(cycleIfParents(graph, roleId, parents)).toEqual(cycle)
  })

  it("finds none where the graph stays acyclic, replacing (not adding to) the role's parents", () => {
    expect(cycleIfParents(graph, "c", ["a"])).toBeUndefined()
    expect(cycleIfParents(graph, "a", [])).toBeUndefined()
    // b's current parent a is replaced: c → b → … does not loop through the old link.
    expect(cycleIfParents(graph, "b", [])).toBeUndefined()
  })

  it("names a role it does not know by its id", () => {
    const partial = assembleRoles(named("a"), [{ roleId: "a", parentId: "x" }])
    expect(cycleIfParents([...partial, { id: "x", name: "x", parents: [], grants: [] }], "x", ["a"])).toEqual([
      "x",
      "role a",
      "x"
    ])
  })
})

describe("grant sets of a role write", () => {
  it("keeps identical grants once, in the order first given; a condition makes a grant different", () => {
    const owner = {
      permission: "docs:read",
      effect: "allow",
      condition: { eq: [{ var: "subject.id" }, "u1"] }
    } as const
    expect(uniqueGrants([allow("docs:read"), owner, allow("docs:read"), owner, allow("docs:*")])).toEqual([
      allow("docs:read"),
      owner,
      allow("docs:*")
    ])
  })

  it("lists each allowed pattern once and no deny", () => {
    expect(
      allowPatterns([allow("docs:*"), { permission: "org:delete", effect: "deny" }, allow("docs:*"), allow("*")])
    ).toEqual(["docs:*", "*"])
  })
})
