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
 * The policy and the mix are in bench/checkPolicy.ts, casbin's model in bench/checkCasbin.ts.
 *
 * Parts 1 and 2 run in one process, no server, one thread: the decision alone. Part 3
 * (bench/checkHttp.ts) builds the same policy in a running server through its API and measures
 * `POST /v1/orgs/{org}/check` with `consistency: "cached"` over HTTP beside the bare HttpApi floor
 * and node-casbin behind a bare node:http server, a batch of 100 checks per request, and `check`
 * over live sockets (bench/checkLive.ts), in interleaved rounds, each against its target.
 *
 *   yarn bench:check     # about 3.5 min; BENCH_CHECKS=2000 BENCH_ROUNDS=9 (parts 1–2),
 *                        # BENCH_HTTP_ROUNDS=3 BENCH_DURATION=5 BENCH_LIVE_SOCKETS=500 (part 3);
 *                        # BENCH_HTTP=0 skips part 3
 */
import { availableParallelism } from "node:os"
import { type CheckInput, closure, decide, type Resource } from "../src/domain/Decision.ts"
import {
  buildCasbin,
  CASBINS,
  casbinAllows,
  domainOf,
  domains,
  type Enforcer,
  groupings,
  policies
} from "./checkCasbin.ts"
import { httpPart } from "./checkHttp.ts"
import {
  ACTIONS,
  AREAS,
  ancestors,
  assignments,
  catalog,
  depth,
  effectiveAllows,
  effectiveMs,
  everywhere,
  inputs,
  NOUNS,
  now,
  roles,
  SCOPE,
  SCOPE_KEY,
  SEED,
  scopedSets,
  subject,
  taken,
  USER
} from "./checkPolicy.ts"
import { cpuModel, loadAverage, num, positiveInt, revision, runBench, version } from "./harness.ts"

const ROUNDS = positiveInt("BENCH_ROUNDS", 9)
const ROUND_MS = 400
const WARMUP_MS = 1000

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
        `ours: src/domain/Decision.ts at ${revision()}, run under tsx`,
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
    { warmup: 3, rounds: positiveInt("BENCH_HTTP_ROUNDS", 3), duration: positiveInt("BENCH_DURATION", 5) }
  )
  console.log([...lines, "", `total ${((performance.now() - began) / 1000).toFixed(0)} s`].join("\n"))
}

runBench(main)
