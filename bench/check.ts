/**
 * bench:check — what one permission decision costs in process, against node-casbin 5 on the same
 * policy, before any HTTP is involved.
 *
 * The policy is a made-up but plausible organization: 1,000 permission keys (100 resources × 10
 * actions), 50 roles in an inheritance DAG four roles deep, with `resource:*` wildcards and deny
 * grants, and one user with 5 assignments, one of them scoped to project/42. The checks are a fixed
 * pseudo-random mix (seeded PRNG): half allowed, half denied, some of the denials by a deny grant.
 *
 * Variants, all on the same mix, all checked to give the same answers first:
 *  (a) `decide(input, roles, assignments)`: the role closure computed on every call;
 *  (b) `decide(input, roles, assignments, ancestors)`: the closure computed once, as the permission
 *      store can do per policy revision;
 *  (c) the user's effective permissions precomputed with `decide` over the whole catalog (a Set of
 *      allowed keys org-wide and one per scope), then one Set lookup per check;
 *  casbin: node-casbin's RBAC-with-domains model built in memory from the same roles, grants and
 *      assignments, `enforceSync()` per check: the CommonJS build with the matcher in two orders,
 *      and the ESM build (what `import` gets) with the faster order.
 *
 * Parts 1 and 2 run in one process, no server, one thread: the decision alone. Part 3
 * (bench/checkHttp.ts) builds the same policy in a running server through its API and measures
 * `POST /v1/orgs/{org}/check` over HTTP, beside node-casbin behind a bare node:http server.
 *
 *   yarn bench:check     # about 3 min; BENCH_CHECKS=2000 BENCH_ROUNDS=9 BENCH_DURATION=10 by default,
 *                        # BENCH_HTTP=0 skips part 3
 */
import { createRequire } from "node:module"
import { availableParallelism } from "node:os"
import * as casbinEsm from "casbin"
import {
  type Assignment,
  type CheckInput,
  closure,
  decide,
  type Grant,
  type Resource,
  type Role
} from "../src/domain/Decision.ts"
import { httpPart } from "./checkHttp.ts"
import { cpuModel, loadAverage, num, positiveInt, revision, runBench, version } from "./harness.ts"

const CHECKS = positiveInt("BENCH_CHECKS", 2_000)
const ROUNDS = positiveInt("BENCH_ROUNDS", 9)
const ROUND_MS = 400
const WARMUP_MS = 1000
const SEED = 0x5eed
const USER = "u-alice"
const SCOPE = { type: "project", id: "42" } as const
const SCOPE_KEY = `${SCOPE.type}/${SCOPE.id}`

// --- The organization -------------------------------------------------------------------------

const AREAS = ["billing", "crm", "hr", "project", "docs", "support", "analytics", "infra", "sales", "legal"]
const NOUNS = ["item", "report", "note", "file", "comment", "task", "label", "view", "export", "setting"]
const ACTIONS = ["read", "list", "create", "update", "delete", "approve", "export", "share", "archive", "admin"]
const catalog = AREAS.flatMap((area) => NOUNS.flatMap((noun) => ACTIONS.map((action) => `${area}.${noun}:${action}`)))

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

const roles: ReadonlyArray<Role> = [
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

const assignments: ReadonlyArray<Assignment> = [
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

const now = Date.now()
const subject = { id: USER }
const ancestors = closure(roles)
const depth = (id: string): number => {
  const parents = roles.find((r) => r.id === id)?.parents ?? []
  return 1 + Math.max(0, ...parents.map(depth))
}
type Kind = "allowed" | "denied by a deny grant" | "default deny"
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
const taken: Record<Kind, number> = { allowed: 0, "denied by a deny grant": 0, "default deny": 0 }
const inputs: Array<CheckInput> = []
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
const everywhere = allowedOn(undefined)
const scopedSets = new Map<string, Map<string, ReadonlySet<string>>>()
for (const assignment of assignments) {
  if (assignment.scope === undefined) continue
  const byId = scopedSets.get(assignment.scope.type) ?? new Map<string, ReadonlySet<string>>()
  byId.set(assignment.scope.id, allowedOn(assignment.scope))
  scopedSets.set(assignment.scope.type, byId)
}
const effectiveMs = Number(process.hrtime.bigint() - builtEffective) / 1e6
const effectiveAllows = (permission: string, resource: Resource | undefined) =>
  (resource === undefined ? everywhere : (scopedSets.get(resource.type)?.get(resource.id) ?? everywhere)).has(
    permission
  )

// --- casbin ------------------------------------------------------------------------------------

type Casbin = typeof casbinEsm
type Enforcer = casbinEsm.Enforcer

// casbin ships two builds: CommonJS (tsc) and ESM (tsup). The ESM build turns the per-policy-row
// `Object.assign` of the matcher's context into esbuild's `__spreadValues`, which is much slower, so
// both are measured: an ESM project gets the ESM build by default.
const casbinCjs = createRequire(import.meta.url)("casbin") as Casbin

const G_FIRST = `g(r.sub, p.sub, r.dom) && (p.dom == "*" || p.dom == r.dom) && keyMatch(r.obj, p.obj) && (r.act == p.act || p.act == "*")`
const G_LAST = `keyMatch(r.obj, p.obj) && (r.act == p.act || p.act == "*") && (p.dom == "*" || p.dom == r.dom) && g(r.sub, p.sub, r.dom)`
const CASBINS: ReadonlyArray<{ readonly name: string; readonly lib: Casbin; readonly matcher: string }> = [
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
const domains = ["org", ...new Set(assignments.flatMap((a) => (a.scope ? [`${a.scope.type}/${a.scope.id}`] : [])))]
const scopeDomains = new Set(domains.slice(1))
const policies = roles.flatMap((r) => r.grants.map((grant) => [r.id, "*", ...split(grant.permission), grant.effect]))
const groupings = [
  ...domains.flatMap((dom) => roles.flatMap((r) => r.parents.map((parent) => [r.id, parent, dom]))),
  ...assignments.flatMap((a) =>
    a.scope === undefined
      ? domains.map((dom) => [USER, a.roleId, dom])
      : [[USER, a.roleId, `${a.scope.type}/${a.scope.id}`]]
  )
]
const domainOf = (resource: Resource | undefined) => {
  if (resource === undefined) return "org"
  const key = `${resource.type}/${resource.id}`
  return scopeDomains.has(key) ? key : "org"
}

const buildCasbin = async (lib: Casbin, matcher: string) => {
  const began = process.hrtime.bigint()
  const enforcer = await lib.newEnforcer(casbinModel(lib, matcher))
  await enforcer.addPolicies(policies)
  await enforcer.addGroupingPolicies(groupings)
  return { enforcer, ms: Number(process.hrtime.bigint() - began) / 1e6 }
}

const casbinAllows = (enforcer: Enforcer, input: CheckInput) => {
  const colon = input.permission.indexOf(":")
  return enforcer.enforceSync(
    USER,
    domainOf(input.resource),
    input.permission.slice(0, colon),
    input.permission.slice(colon + 1)
  )
}

// --- Measuring --------------------------------------------------------------------------------

/** Runs the checks inputs[from..to) and returns how many were allowed. */
type Run = (from: number, to: number) => number

interface Measured {
  readonly name: string
  readonly median: number
  readonly min: number
  readonly max: number
  readonly checks: number
}

const expected: Array<boolean> = []
const prefix = [0]

/** Checks a round's allowed count against the verified answers, so no result goes unused. */
const runChecked = (name: string, run: Run, cursor: number, count: number) => {
  let allowed = 0
  let wanted = 0
  let at = cursor
  let left = count
  while (left > 0) {
    const to = Math.min(inputs.length, at + left)
    allowed += run(at, to)
    wanted += prefix[to]! - prefix[at]!
    left -= to - at
    at = to === inputs.length ? 0 : to
  }
  if (allowed !== wanted) throw new Error(`${name}: ${allowed} allowed where ${wanted} were expected`)
  return at
}

const measure = (name: string, run: Run): Measured => {
  // Warm-up: at least WARMUP_MS, in slices of 100 checks, then size the rounds to about ROUND_MS.
  let cursor = 0
  let warmChecks = 0
  const began = process.hrtime.bigint()
  let elapsed = 0n
  while (elapsed < BigInt(WARMUP_MS) * 1_000_000n) {
    cursor = runChecked(name, run, cursor, 100)
    warmChecks += 100
    elapsed = process.hrtime.bigint() - began
  }
  const perRound = Math.max(100, Math.round((warmChecks * ROUND_MS * 1e6) / Number(elapsed)))
  const samples: Array<number> = []
  for (let round = 0; round < ROUNDS; round++) {
    const start = process.hrtime.bigint()
    cursor = runChecked(name, run, cursor, perRound)
    samples.push(Number(process.hrtime.bigint() - start) / perRound)
  }
  samples.sort((x, y) => x - y)
  process.stderr.write(`${name}: ${num(perRound)} checks per round\n`)
  return {
    name,
    median: samples[Math.floor(samples.length / 2)]!,
    min: samples[0]!,
    max: samples[samples.length - 1]!,
    checks: perRound * ROUNDS
  }
}

const table = (rows: ReadonlyArray<Measured>, base: Measured) => {
  const header = ["variant", "ns/check (median)", "rounds min–max", "checks/s", "vs (b)"]
  const lines = rows.map((row) => [
    row.name,
    num(row.median),
    `${num(row.min)}–${num(row.max)}`,
    num(1e9 / row.median),
    `${Number((row.median / base.median).toPrecision(3))}×`
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((line) => line[i]!.length)))
  const format = (cells: ReadonlyArray<string>) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |`
  const rule = `|${widths.map((w, i) => `${"-".repeat(w + 1)}${i === 0 ? "-" : ":"}`).join("|")}|`
  return [format(header), rule, ...lines.map(format)].join("\n")
}

// --- Main -------------------------------------------------------------------------------------

const main = async () => {
  const began = performance.now()
  const loadBefore = loadAverage()
  const date = new Date().toISOString()

  const casbin = new Map<string, { enforcer: Enforcer; ms: number }>()
  for (const { name, lib, matcher } of CASBINS) casbin.set(name, await buildCasbin(lib, matcher))

  // Same answers from every variant, on the mix and on the whole catalog without a resource and on the scope.
  const answers: Record<string, (input: CheckInput) => boolean> = {
    "(a)": (input) => decide(input, roles, assignments).allowed,
    "(b)": (input) => decide(input, roles, assignments, ancestors).allowed,
    "(c)": (input) => effectiveAllows(input.permission, input.resource),
    ...Object.fromEntries(
      [...casbin].map(([name, { enforcer }]) => [name, (input: CheckInput) => casbinAllows(enforcer, input)])
    )
  }
  const places: ReadonlyArray<Resource | undefined> = [undefined, SCOPE]
  const everything = [
    ...inputs,
    ...places.flatMap((resource) => catalog.map((permission) => ({ subject, permission, resource, now })))
  ]
  for (const input of everything) {
    const reference = answers["(b)"]!(input)
    for (const [name, answer] of Object.entries(answers)) {
      if (answer(input) !== reference) {
        const where = input.resource ? `${input.resource.type}/${input.resource.id}` : "org-wide"
        throw new Error(`${name} answers ${!reference} for ${input.permission} on ${where}; (b) answers ${reference}`)
      }
    }
  }
  for (const input of inputs) {
    const allowed = decide(input, roles, assignments, ancestors).allowed
    expected.push(allowed)
    prefix.push(prefix[prefix.length - 1]! + (allowed ? 1 : 0))
  }
  const scopedOnly = inputs.filter((input, i) => expected[i] && !everywhere.has(input.permission)).length
  process.stderr.write(`all ${Object.keys(answers).length} variants agree on ${num(everything.length)} checks\n`)

  const rows: Array<Measured> = []
  rows.push(
    measure("(a) decide, closure per call", (from, to) => {
      let allowed = 0
      for (let i = from; i < to; i++) if (decide(inputs[i]!, roles, assignments).allowed) allowed++
      return allowed
    })
  )
  rows.push(
    measure("(b) decide, closure precomputed", (from, to) => {
      let allowed = 0
      for (let i = from; i < to; i++) if (decide(inputs[i]!, roles, assignments, ancestors).allowed) allowed++
      return allowed
    })
  )
  rows.push(
    measure("(c) effective Set lookup", (from, to) => {
      let allowed = 0
      for (let i = from; i < to; i++) {
        const input = inputs[i]!
        if (effectiveAllows(input.permission, input.resource)) allowed++
      }
      return allowed
    })
  )
  for (const [name, { enforcer }] of casbin) {
    rows.push(
      measure(`${name} (enforceSync)`, (from, to) => {
        let allowed = 0
        for (let i = from; i < to; i++) if (casbinAllows(enforcer, inputs[i]!)) allowed++
        return allowed
      })
    )
  }
  const base = rows[1]!

  const grants = roles.flatMap((r) => r.grants)
  const closureUs = (() => {
    const start = process.hrtime.bigint()
    for (let i = 0; i < 100; i++) closure(roles)
    return Number(process.hrtime.bigint() - start) / 100 / 1000
  })()
  const userRoles = new Set(assignments.flatMap((a) => ancestors.get(a.roleId) ?? []))
  console.log(
    [
      "",
      `bench:check — in-process permission decisions, ${date}`,
      `machine: ${cpuModel()}, ${availableParallelism()} cores, Node ${process.version}; ` +
        `load average ${loadBefore} before, ${loadAverage()} after`,
      `versions: casbin ${version("casbin")}, @casbin/expression-eval ${version("@casbin/expression-eval")}; ` +
        `ours: src/layers/Decision.ts at ${revision()}, run under tsx`,
      "process: one Node process, one thread, no server and no I/O (parts 1 and 2)",
      `policy: ${num(catalog.length)} permission keys (${AREAS.length * NOUNS.length} resources × ${ACTIONS.length} actions), ` +
        `${roles.length} roles, ${grants.length} grants (${grants.filter((g) => g.permission.endsWith("*")).length} wildcards, ` +
        `${grants.filter((g) => g.effect === "deny").length} denies), inheritance depth ${Math.max(...roles.map((r) => depth(r.id)))}; ` +
        `closure of all roles ${num(closureUs, 1)} µs`,
      `user: ${assignments.length} assignments (1 scoped to ${SCOPE_KEY}), ${userRoles.size} roles with ancestors; ` +
        `effective set ${num(everywhere.size)} keys org-wide, ${num(scopedSets.get(SCOPE.type)?.get(SCOPE.id)?.size ?? 0)} on ${SCOPE_KEY}, ` +
        `built in ${num(effectiveMs, 1)} ms (${num(catalog.length * (1 + scopedSets.size))} decides)`,
      `mix: ${num(inputs.length)} checks, seed 0x${SEED.toString(16)}: ${num(taken.allowed)} allowed ` +
        `(${num(scopedOnly)} only through the scoped assignment), ${num(taken["denied by a deny grant"])} denied by a deny grant, ` +
        `${num(taken["default deny"])} default deny; ${num(inputs.filter((i) => domainOf(i.resource) === SCOPE_KEY).length)} on ${SCOPE_KEY}`,
      `casbin: RBAC with domains, ${num(policies.length)} p rules (dom "*"), ${num(groupings.length)} g rules over domains ` +
        `${domains.join(", ")} (inheritance and org-wide assignments repeated per domain); ` +
        `enforcers built in ${[...casbin.values()].map((c) => `${num(c.ms, 1)}`).join(", ")} ms; ` +
        "CJS = lib/cjs through require(), ESM = lib/esm through import",
      `answers: all ${Object.keys(answers).length} variants agree on the mix and on the whole catalog without a resource and on ${SCOPE_KEY} ` +
        `(${num(everything.length)} checks)`,
      `timing: process.hrtime.bigint(); per variant ≥${WARMUP_MS / 1000} s warm-up, then ${ROUNDS} rounds of ~${ROUND_MS} ms ` +
        "over the mix in order; median, fastest and slowest round",
      "",
      table(rows, base),
      "",
      ...rows.slice(3).map((row) => `${row.name} vs (b): ${(row.median / base.median).toFixed(1)}× the time per check`),
      `(b) vs (c): ${(base.median / rows[2]!.median).toFixed(0)}× the time per check`,
      "",
      `parts 1 and 2: ${((performance.now() - began) / 1000).toFixed(0)} s`
    ].join("\n")
  )

  if (process.env.BENCH_HTTP === "0") return
  const probe = inputs.find(
    (input, i) => expected[i] && input.resource?.id === SCOPE.id && !everywhere.has(input.permission)
  )!
  const colon = probe.permission.indexOf(":")
  const lines = await httpPart(
    {
      catalog,
      roles,
      assignments,
      probe,
      probeAllowed: true,
      batch: inputs.slice(0, 100),
      casbin: {
        policies,
        groupings,
        request: [USER, domainOf(probe.resource), probe.permission.slice(0, colon), probe.permission.slice(colon + 1)]
      }
    },
    { warmup: 3, duration: positiveInt("BENCH_DURATION", 10) }
  )
  console.log([...lines, "", `total ${((performance.now() - began) / 1000).toFixed(0)} s`].join("\n"))
}

runBench(main)
