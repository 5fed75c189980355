import fc from "fast-check"
import { describe, expect, it } from "vitest"
import * as EffectiveSet from "../../src/domain/EffectiveSet.ts"

const set = (
  permissions: Array<string>,
  scoped: EffectiveSet.ScopedKeys = {},
  scopedDenied: EffectiveSet.ScopedKeys = {},
  revision = "1"
) => EffectiveSet.fromSnapshot({ revision, permissions, scoped, scopedDenied, roles: ["member"] })

/** The set as plain data, to compare with `toEqual`. */
const plain = (s: EffectiveSet.EffectiveSet) => {
  const { roles: _roles, ...rest } = EffectiveSet.toSnapshot(s)
  return rest
}

describe("EffectiveSet.can: allowed = (permissions − scopedDenied[resource]) ∪ scoped[resource]", () => {
  const held = set(["doc:read", "org:read"], { "doc/1": ["doc:edit"] }, { "doc/9": ["doc:read"] })
  const cases: Array<[string, string | undefined, boolean, string]> = [
    ["doc:read", undefined, true, "held organization-wide"],
    ["doc:edit", undefined, false, "held only on doc/1"],
    ["doc:read", "doc/7", true, "organization-wide applies on any resource"],
    ["doc:edit", "doc/1", true, "scoped on doc/1"],
    ["doc:edit", "doc/2", false, "scoped elsewhere"],
    ["doc:edit", "folder/1", false, "same id, another type"],
    ["doc:read", "doc/9", false, "denied on doc/9"],
    ["org:read", "doc/9", true, "the deny on doc/9 names another key"],
    ["doc:write", "doc/9", false, "never held"]
  ]
  it.each(cases)("%s on %s is %s (%s)", (permission, resource, allowed) => {
    expect(EffectiveSet.can(held, permission, resource)).toBe(allowed)
  })

  it("lets a role assigned on the resource allow what a deny there removes", () => {
    const both = set([], { "doc/3": ["doc:read"] }, { "doc/3": ["doc:read"] })
    expect(EffectiveSet.can(both, "doc:read", "doc/3")).toBe(true)
  })

  it("keys resources as type/id", () => {
    expect(EffectiveSet.resourceKey({ type: "project", id: "p-17" })).toBe("project/p-17")
  })
})

describe("EffectiveSet.diff", () => {
  const cases: Array<{
    name: string
    from: EffectiveSet.EffectiveSet
    to: EffectiveSet.EffectiveSet
    diff: EffectiveSet.Diff
  }> = [
    {
      name: "nothing changed: only the revision moves",
      from: set(["a:read"]),
      to: set(["a:read"], {}, {}, "2"),
      diff: { revision: "2", added: [], removed: [] }
    },
    {
      name: "organization-wide keys, sorted",
      from: set(["b:read", "c:read"]),
      to: set(["z:read", "a:read", "c:read"], {}, {}, "3"),
      diff: { revision: "3", added: ["a:read", "z:read"], removed: ["b:read"] }
    },
    {
      name: "a scoped deny moving from one resource to another; empty parts left out",
      from: set(["docs:read"], { "project/1": ["docs:write"] }, { "project/2": ["docs:read"] }),
      to: set(["docs:read"], { "project/1": ["docs:write"] }, { "project/3": ["docs:read"] }, "2"),
      diff: {
        revision: "2",
        added: [],
        removed: [],
        scopedDeniedAdded: { "project/3": ["docs:read"] },
        scopedDeniedRemoved: { "project/2": ["docs:read"] }
      }
    },
    {
      name: "scoped keys added to and removed from one resource",
      from: set([], { "doc/1": ["doc:edit", "doc:read"] }),
      to: set([], { "doc/1": ["doc:read", "doc:share"], "doc/2": ["doc:edit"] }, {}, "5"),
      diff: {
        revision: "5",
        added: [],
        removed: [],
        scopedAdded: { "doc/1": ["doc:share"], "doc/2": ["doc:edit"] },
        scopedRemoved: { "doc/1": ["doc:edit"] }
      }
    },
    {
      name: "an empty resource entry in a snapshot counts as none",
      from: set([], { "doc/1": [] }),
      to: set([], {}, {}, "2"),
      diff: { revision: "2", added: [], removed: [] }
    }
  ]
  it.each(cases)("$name", ({ from, to, diff }) => {
    expect(EffectiveSet.diff(from, to)).toEqual(diff)
    const nothing = Object.keys(diff).length === 3 && diff.added.length === 0 && diff.removed.length === 0
    expect(EffectiveSet.isEmptyChange(diff)).toBe(nothing)
    expect(plain(EffectiveSet.applyDiff(from, diff).set)).toEqual(plain(to))
  })

  it("reports only what a frame actually changed, and keeps the roles", () => {
    const from = EffectiveSet.fromSnapshot({
      revision: "1",
      permissions: ["a:read"],
      scoped: { "doc/1": ["doc:edit"] },
      roles: ["editor"]
    })
    const { set: next, change } = EffectiveSet.applyDiff(from, {
      revision: "2",
      added: ["a:read", "b:read"],
      removed: ["c:read"],
      scopedAdded: { "doc/1": ["doc:edit"] },
      scopedRemoved: { "doc/1": ["doc:edit"] }
    })
    expect(change).toEqual({
      added: ["b:read"],
      removed: [],
      scopedAdded: {},
      scopedRemoved: { "doc/1": ["doc:edit"] },
      scopedDeniedAdded: {},
      scopedDeniedRemoved: {}
    })
    expect(next.revision).toBe(2n)
    expect(next.roles).toEqual(["editor"])
    expect(next.scoped.size).toBe(0)
    // The input is left as it was.
    expect(plain(from)).toEqual({
      revision: "1",
      permissions: ["a:read"],
      scoped: { "doc/1": ["doc:edit"] },
      scopedDenied: {}
    })
  })

  it("tells a rename of the roles apart from a change of keys", () => {
    const a = EffectiveSet.fromSnapshot({ revision: "1", permissions: ["x:read"], scoped: {}, roles: ["editor"] })
    const b = EffectiveSet.fromSnapshot({ revision: "2", permissions: ["x:read"], scoped: {}, roles: ["writer"] })
    expect(EffectiveSet.rolesChanged(a, b)).toBe(true)
    expect(EffectiveSet.sameKeys(a, b)).toBe(true)
    expect(EffectiveSet.rolesChanged(a, a)).toBe(false)
  })

  it("applySnapshot replaces everything and says what went", () => {
    const from = set(["a:read", "b:read"], { "doc/1": ["doc:edit"] })
    const { set: next, change } = EffectiveSet.applySnapshot(from, {
      revision: "8",
      permissions: ["a:read"],
      scoped: { "doc/2": ["doc:edit"] },
      roles: []
    })
    expect(next.revision).toBe(8n)
    expect(change).toEqual({
      added: [],
      removed: ["b:read"],
      scopedAdded: { "doc/2": ["doc:edit"] },
      scopedRemoved: { "doc/1": ["doc:edit"] },
      scopedDeniedAdded: {},
      scopedDeniedRemoved: {}
    })
  })
})

// --- Properties --------------------------------------------------------------------------------------

const keyArb = fc.constantFrom("a:read", "a:write", "b:read", "b:write", "c:read", "*")
const resourceArb = fc.constantFrom("doc/1", "doc/2", "project/1", "project/10")
const scopedArb = fc.dictionary(resourceArb, fc.uniqueArray(keyArb, { maxLength: 4 }), { maxKeys: 4 })
const setArb = fc
  .record({
    revision: fc.bigInt({ min: 0n, max: 2n ** 70n }),
    permissions: fc.uniqueArray(keyArb, { maxLength: 6 }),
    scoped: scopedArb,
    scopedDenied: scopedArb
  })
  .map(({ revision, ...rest }) => EffectiveSet.fromSnapshot({ ...rest, revision: revision.toString(), roles: [] }))

describe("EffectiveSet properties", () => {
  it("applying diff(a, b) to a gives b", () => {
    fc.assert(
      fc.property(setArb, setArb, (a, b) => {
        expect(plain(EffectiveSet.applyDiff(a, EffectiveSet.diff(a, b)).set)).toEqual(plain(b))
      }),
      { numRuns: 500 }
    )
  })

  it("diff(a, a) is empty, and a snapshot round-trips", () => {
    fc.assert(
      fc.property(setArb, (a) => {
        expect(EffectiveSet.isEmptyChange(EffectiveSet.diff(a, a))).toBe(true)
        expect(plain(EffectiveSet.fromSnapshot(EffectiveSet.toSnapshot(a)))).toEqual(plain(a))
      })
    )
  })

  it("can() after applying the diff answers as b does, on every key and resource", () => {
    fc.assert(
      fc.property(setArb, setArb, keyArb, fc.option(resourceArb, { nil: undefined }), (a, b, key, resource) => {
        const applied = EffectiveSet.applyDiff(a, EffectiveSet.diff(a, b)).set
        expect(EffectiveSet.can(applied, key, resource)).toBe(EffectiveSet.can(b, key, resource))
      }),
      { numRuns: 500 }
    )
  })
})
