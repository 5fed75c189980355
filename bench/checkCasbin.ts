/**
 * node-casbin 5 for bench:check, built in memory from the policy of bench/checkPolicy.ts: RBAC with
 * domains (one for the organization, one per assignment scope), in the CommonJS build with the
 * matcher in two orders and in the ESM build (what `import` gets) with the faster order.
 */
import { createRequire } from "node:module"
import * as casbinEsm from "casbin"
import type { CheckInput, Resource } from "../src/domain/Decision.ts"
import { assignments, roles, USER } from "./checkPolicy.ts"

// --- casbin ------------------------------------------------------------------------------------

type Casbin = typeof casbinEsm
export type Enforcer = casbinEsm.Enforcer

// casbin ships two builds: CommonJS (tsc) and ESM (tsup). The ESM build turns the per-policy-row
// `Object.assign` of the matcher's context into esbuild's `__spreadValues`, which is much slower, so
// both are measured: an ESM project gets the ESM build by default.
const casbinCjs = createRequire(import.meta.url)("casbin") as Casbin

const G_FIRST = `g(r.sub, p.sub, r.dom) && (p.dom == "*" || p.dom == r.dom) && keyMatch(r.obj, p.obj) && (r.act == p.act || p.act == "*")`
const G_LAST = `keyMatch(r.obj, p.obj) && (r.act == p.act || p.act == "*") && (p.dom == "*" || p.dom == r.dom) && g(r.sub, p.sub, r.dom)`
export const CASBINS: ReadonlyArray<{ readonly name: string; readonly lib: Casbin; readonly matcher: string }> = [
  { name: "casbin CJS, g() first", lib: casbinCjs, matcher: G_FIRST },
  { name: "casbin CJS, g() last", lib: casbinCjs, matcher: G_LAST },
  { name: "casbin ESM, g() last", lib: casbinEsm, matcher: G_LAST }
]

const casbinModel = (lib: Casbin, matcher: string) =>
  lib.newModelFromString(
    [
      "[request_definition]",
      "r = sub, dom, obj, act",
      "[policy_definition]",
      "p = sub, dom, obj, act, eft",
      "[role_definition]",
      "g = _, _, _",
      "[policy_effect]",
      "e = some(where (p.eft == allow)) && !some(where (p.eft == deny))",
      "[matchers]",
      `m = ${matcher}`
    ].join("\n")
  )

/** `resource:action` → [obj, act]; `resource:*` → [resource, "*"]; `*` → ["*", "*"]. */
const split = (permission: string) => {
  const colon = permission.indexOf(":")
  return colon === -1 ? [permission, permission] : [permission.slice(0, colon), permission.slice(colon + 1)]
}

// One domain for the organization and one per assignment scope. Grants hold in every domain
// (p.dom "*"); role inheritance and org-wide assignments are repeated in each domain, the scoped
// assignment is only in its own. A check goes to its resource's domain if that is one, else "org".
export const domains = [
  "org",
  ...new Set(assignments.flatMap((a) => (a.scope ? [`${a.scope.type}/${a.scope.id}`] : [])))
]
const scopeDomains = new Set(domains.slice(1))
export const policies = roles.flatMap((r) =>
  r.grants.map((grant) => [r.id, "*", ...split(grant.permission), grant.effect])
)
export const groupings = [
  ...domains.flatMap((dom) => roles.flatMap((r) => r.parents.map((parent) => [r.id, parent, dom]))),
  ...assignments.flatMap((a) =>
    a.scope === undefined
      ? domains.map((dom) => [USER, a.roleId, dom])
      : [[USER, a.roleId, `${a.scope.type}/${a.scope.id}`]]
  )
]
export const domainOf = (resource: Resource | undefined) => {
  if (resource === undefined) return "org"
  const key = `${resource.type}/${resource.id}`
  return scopeDomains.has(key) ? key : "org"
}

export const buildCasbin = async (lib: Casbin, matcher: string) => {
  const began = process.hrtime.bigint()
  const enforcer = await lib.newEnforcer(casbinModel(lib, matcher))
  await enforcer.addPolicies(policies)
  await enforcer.addGroupingPolicies(groupings)
  return { enforcer, ms: Number(process.hrtime.bigint() - began) / 1e6 }
}

export const casbinAllows = (enforcer: Enforcer, input: CheckInput) => {
  const colon = input.permission.indexOf(":")
  return enforcer.enforceSync(
    USER,
    domainOf(input.resource),
    input.permission.slice(0, colon),
    input.permission.slice(colon + 1)
  )
}
