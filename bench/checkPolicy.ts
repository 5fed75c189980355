/**
 * The policy of bench:check and the mix of checks every part runs: a made-up but plausible
 * organization (1,000 permission keys, 50 roles in an inheritance DAG four deep, wildcards and deny
 * grants), one user with 5 assignments (one scoped to project/42), a fixed pseudo-random mix of
 * checks (seeded PRNG), and variant (c)'s precomputed effective sets. bench/check.ts says how it is used.
 */
import {
  type Assignment,
  type CheckInput,
  closure,
  decide,
  type Grant,
  type Resource,
  type Role
} from "../src/domain/Decision.ts"
import { positiveInt } from "./harness.ts"

export const CHECKS = positiveInt("BENCH_CHECKS", 2_000)
export const SEED = 0x5eed
export const USER = "u-alice"
export const SCOPE = { type: "project", id: "42" } as const
export const SCOPE_KEY = `${SCOPE.type}/${SCOPE.id}`

// --- The organization -------------------------------------------------------------------------

export const AREAS = ["billing", "crm", "hr", "project", "docs", "support", "analytics", "infra", "sales", "legal"]
export const NOUNS = ["item", "report", "note", "file", "comment", "task", "label", "view", "export", "setting"]
export const ACTIONS = ["read", "list", "create", "update", "delete", "approve", "export", "share", "archive", "admin"]
export const catalog = AREAS.flatMap((area) =>
  NOUNS.flatMap((noun) => ACTIONS.map((action) => `${area}.${noun}:${action}`))
)

const allow = (permission: string): Grant => ({ permission, effect: "allow" })
const deny = (permission: string): Grant => ({ permission, effect: "deny" })
const each = (nouns: ReadonlyArray<string>, actions: ReadonlyArray<string>, area: string) =>
  nouns.flatMap((noun) => actions.map((action) => allow(`${area}.${noun}:${action}`)))
const role = (id: string, parents: ReadonlyArray<string>, grants: ReadonlyArray<Grant>): Role => ({
  id,
  name: id,
  parents,
  grants
})

export const roles: ReadonlyArray<Role> = [
  // Per area a chain viewer ← editor ← manager ← admin: 40 roles, four deep.
  ...AREAS.flatMap((area) => [
    role(`${area}-viewer`, [], each(NOUNS, ["read", "list"], area)),
    role(
      `${area}-editor`,
      [`${area}-viewer`],
      [
        ...each(["item", "note", "file", "task", "label", "view"], ["create", "update"], area),
        allow(`${area}.comment:*`)
      ]
    ),
    role(
      `${area}-manager`,
      [`${area}-editor`],
      [
        ...each(["item", "report", "task", "file"], ["delete", "approve", "archive"], area),
        allow(`${area}.task:*`),
        allow(`${area}.report:export`),
        allow(`${area}.report:share`)
      ]
    ),
    role(
      `${area}-admin`,
      [`${area}-manager`],
      [
        allow(`${area}.setting:*`),
        allow(`${area}.label:*`),
        allow(`${area}.view:*`),
        allow(`${area}.export:*`),
        allow(`${area}.item:admin`),
        allow(`${area}.file:share`)
      ]
    )
  ]),
  // Cross-cutting roles: 10 more, several with parents in two chains.
  role(
    "auditor",
    [],
    AREAS.flatMap((area) => [...each(["report"], ["read", "list"], area), allow(`${area}.export:read`)])
  ),
  role(
    "contractor",
    [],
    [
      deny("crm.export:*"),
      deny("crm.item:delete"),
      deny("sales.report:share"),
      deny("project.setting:*"),
      allow("support.item:read")
    ]
  ),
  role("team-lead", ["support-manager", "docs-editor"], [allow("support.report:approve")]),
  role("release-manager", ["infra-manager", "project-editor"], [allow("infra.file:share")]),
  role("finance-lead", ["billing-manager", "analytics-viewer"], [allow("analytics.report:export")]),
  role("people-partner", ["hr-manager", "legal-viewer"], [deny("hr.export:share")]),
  role("sales-ops", ["sales-manager", "crm-editor", "analytics-editor"], [allow("crm.report:export")]),
  role("security-officer", ["auditor", "infra-manager"], [deny("infra.setting:delete")]),
  role("guest", [], [allow("docs.item:read"), deny("docs.setting:*")]),
  role("superadmin", [], [allow("*")])
]

export const assignments: ReadonlyArray<Assignment> = [
  { id: "a1", roleId: "crm-admin" },
  { id: "a2", roleId: "sales-ops" },
  { id: "a3", roleId: "team-lead" },
  { id: "a4", roleId: "contractor" },
  { id: "a5", roleId: "project-admin", scope: SCOPE }
]

// --- The mix of checks ------------------------------------------------------------------------

/** mulberry32: a small seeded PRNG, so every run checks the same keys in the same order. */
const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

export const now = Date.now()
export const subject = { id: USER }
export const ancestors = closure(roles)
export const depth = (id: string): number => {
  const parents = roles.find((r) => r.id === id)?.parents ?? []
  return 1 + Math.max(0, ...parents.map(depth))
}
export type Kind = "allowed" | "denied by a deny grant" | "default deny"
const kindOf = (input: CheckInput): Kind => {
  const decision = decide(input, roles, assignments, ancestors)
  if (decision.allowed) return "allowed"
  return decision.paths.some((path) => path.grant.effect === "deny") ? "denied by a deny grant" : "default deny"
}

const random = prng(SEED)
const projects: ReadonlyArray<Resource> = Array.from({ length: 60 }, (_, i) => ({ type: "project", id: String(i + 1) }))
const quota: Record<Kind, number> = {
  allowed: Math.ceil(CHECKS / 2),
  "denied by a deny grant": Math.round(CHECKS * 0.05),
  "default deny": 0
}
quota["default deny"] = CHECKS - quota.allowed - quota["denied by a deny grant"]
export const taken: Record<Kind, number> = { allowed: 0, "denied by a deny grant": 0, "default deny": 0 }
export const inputs: Array<CheckInput> = []
while (inputs.length < CHECKS) {
  // A quarter of the checks are on project/42, where the scoped assignment applies.
  const resource = random() < 0.25 ? projects[41]! : projects[Math.floor(random() * projects.length)]!
  const input = { subject, permission: catalog[Math.floor(random() * catalog.length)]!, resource, now }
  const kind = kindOf(input)
  if (taken[kind] >= quota[kind]) continue
  taken[kind]++
  inputs.push(input)
}

// --- Variant (c): the user's effective permissions as Sets ------------------------------------

const builtEffective = process.hrtime.bigint()
const allowedOn = (resource: Resource | undefined) =>
  new Set(
    catalog.filter(
      (permission) => decide({ subject, permission, resource, now }, roles, assignments, ancestors).allowed
    )
  )
export const everywhere = allowedOn(undefined)
export const scopedSets = new Map<string, Map<string, ReadonlySet<string>>>()
for (const assignment of assignments) {
  if (assignment.scope === undefined) continue
  const byId = scopedSets.get(assignment.scope.type) ?? new Map<string, ReadonlySet<string>>()
  byId.set(assignment.scope.id, allowedOn(assignment.scope))
  scopedSets.set(assignment.scope.type, byId)
}
export const effectiveMs = Number(process.hrtime.bigint() - builtEffective) / 1e6
export const effectiveAllows = (permission: string, resource: Resource | undefined) =>
  (resource === undefined ? everywhere : (scopedSets.get(resource.type)?.get(resource.id) ?? everywhere)).has(
    permission
  )
