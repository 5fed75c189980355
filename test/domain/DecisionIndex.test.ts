import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { type Assignment, closure, covers, decide, type Grant, type Role } from "../../src/domain/Decision.ts"

/**
 * `decide` looks grants up in a per-role index (exact keys, then patterns) instead of scanning every
 * grant; it must answer, with the same reason, exactly as a plain scan of the grants in order does.
 */
const scan = (permission: string, roles: ReadonlyArray<Role>, assignments: ReadonlyArray<Assignment>) => {
  const byId = new Map(roles.map((role) => [role.id, role]))
  const ancestors = closure(roles)
  const found: Array<{ grant: Grant; via: string }> = []
  for (const assignment of assignments) {
    for (const via of ancestors.get(assignment.roleId) ?? []) {
      for (const grant of byId.get(via)?.grants ?? [])
        if (covers(grant.permission, permission)) found.push({ grant, via })
    }
  }
  const deny = found.find((path) => path.grant.effect === "deny")
  if (deny !== undefined) return { allowed: false, by: `${deny.grant.permission} ${deny.via}` }
  const allow = found.find((path) => path.grant.effect === "allow")
  return allow === undefined
    ? { allowed: false, by: "" }
    : { allowed: true, by: `${allow.grant.permission} ${allow.via}` }
}

const resources = ["docs", "billing", "members"]
const actions = ["read", "write", "delete"]
const key = fc.tuple(fc.constantFrom(...resources), fc.constantFrom(...actions)).map(([r, a]) => `${r}:${a}`)
const pattern = fc.oneof(key, fc.constantFrom("*", ...resources.map((r) => `${r}:*`)))
const grant = fc.record({ permission: pattern, effect: fc.constantFrom("allow" as const, "deny" as const) })
const roles = fc
  .array(fc.array(grant, { maxLength: 8 }), { minLength: 1, maxLength: 6 })
  .chain((grantLists) =>
    fc
      .tuple(...grantLists.map((_, i) => fc.subarray(grantLists.map((__, j) => `r${j}`).filter((_, j) => j < i))))
      .map((parents) =>
        grantLists.map((grants, i): Role => ({ id: `r${i}`, name: `r${i}`, parents: parents[i]!, grants }))
      )
  )

describe("decide with indexed grants", () => {
  it("answers every key as a plain scan of the grants in order does, with the same deciding grant", () => {
    fc.assert(
      fc.property(roles, fc.array(fc.nat(5), { minLength: 1, maxLength: 3 }), (policy, picks) => {
        const assignments = picks.map((pick, i) => ({ id: `a${i}`, roleId: `r${pick % policy.length}` }))
        for (const r of resources) {
          for (const a of actions) {
            const permission = `${r}:${a}`
            const decision = decide({ subject: { id: "u" }, permission, now: 0 }, policy, assignments)
            const expected = scan(permission, policy, assignments)
            expect(decision.allowed).toBe(expected.allowed)
            if (expected.by !== "") {
              const [granted, via] = expected.by.split(" ")
              expect(decision.reason).toContain(`${granted} from role ${via}`)
            }
          }
        }
      }),
      { numRuns: 300 }
    )
  })
})
