/**
 * bench:check part 3 — `POST /v1/orgs/{org}/check` through the whole server, on real Postgres and
 * Redis, with the policy of parts 1 and 2 built through the public API (catalog, roles with their
 * parents and grants, an invited member with five assignments, one scoped).
 *
 * Cases, every server started once, taking turns in interleaved rounds (bench/rounds.ts), autocannon
 * in its own process; a service (the owner's token, holding `authz:check`) asks about the member:
 *  - ours: one check with `consistency: "cached"` (allowed through inheritance on the scoped project);
 *  - bare HttpApi: the same request to an HttpApi endpoint that decodes the path and the body with our
 *    `CheckRequest` schema and answers a constant `CheckResult` (bench/servers/effect-http.ts), the
 *    floor: target ≤ 40 µs of server CPU over it;
 *  - node:http + casbin: the same policy in node-casbin (CJS, g() last) behind a bare node:http
 *    server without authentication or storage (bench/servers/node-casbin.ts): target ≥ 10× cheaper;
 *  - ours: a batch of 100 checks of the mix per request (cached): target ≥ 200,000 checks/s;
 *  - ours: the member's own `check` messages over open live sessions (bench/checkLive.ts), target
 *    ≤ 15 µs of server CPU per check; beside it, uWebSockets.js alone answering every message of the
 *    same client with a constant `check.result` (bench/servers/uws-live-floor.ts), the socket's floor.
 */
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Assignment, CheckInput, Role } from "../src/domain/Decision.ts"
import { waitForMail } from "../test/support/Mailbox.ts"
import { startPostgres, startRedis } from "../test/support/Servers.ts"
import { openLive } from "./checkLive.ts"
import { freePort, num, ourServer, positiveInt, table, tempDirs } from "./harness.ts"
import {
  type Case,
  cheaper,
  cpuPerRequest,
  type Done,
  interleave,
  overFloor,
  type Rounds,
  roundLines,
  type Server,
  startServer,
  stopServers
} from "./rounds.ts"

const PASSWORD = "a benchmark passphrase"

export interface HttpPolicy {
  readonly catalog: ReadonlyArray<string>
  readonly roles: ReadonlyArray<Role>
  readonly assignments: ReadonlyArray<Assignment>
  /** The check every single-check request makes, and its expected answer. */
  readonly probe: CheckInput
  readonly probeAllowed: boolean
  /** 100 checks of the mix for the batch case. */
  readonly batch: ReadonlyArray<CheckInput>
  /** casbin's rules for the same policy, and how a check maps to its request. */
  readonly casbin: {
    readonly policies: ReadonlyArray<ReadonlyArray<string>>
    readonly groupings: ReadonlyArray<ReadonlyArray<string>>
    readonly request: ReadonlyArray<string>
  }
}

const json = { "content-type": "application/json" }

const call = async <A>(base: string, method: string, path: string, token: string | undefined, body?: unknown) => {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { ...json, ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  const text = await response.text()
  if (response.status >= 300) throw new Error(`${method} ${path}: ${response.status} ${text}`)
  return (text === "" ? {} : JSON.parse(text)) as A
}

const signIn = async (base: string, email: string) => {
  await call(base, "POST", "/v1/auth/register", undefined, { email, password: PASSWORD, name: "Bench" })
  const tokens = await call<{ accessToken: string }>(base, "POST", "/v1/auth/login", undefined, {
    email,
    password: PASSWORD
  })
  const me = await call<{ id: string }>(base, "GET", "/v1/me", tokens.accessToken)
  return { token: tokens.accessToken, userId: me.id }
}

/** Builds the policy through the API; returns the organization, the owner's token and the member's id. */
const buildPolicy = async (base: string, dataDir: string, policy: HttpPolicy) => {
  const began = performance.now()
  const owner = await signIn(base, "owner@bench.example")
  const member = await signIn(base, "alice@bench.example")
  const org = await call<{ id: string }>(base, "POST", "/v1/orgs", owner.token, { name: "Bench", slug: "bench" })
  const path = `/v1/orgs/${org.id}`
  await call(base, "POST", `${path}/invitations`, owner.token, { email: "alice@bench.example" })
  const mail = await waitForMail(dataDir, (m) => m.to.includes("alice@bench.example") && /invit/i.test(m.subject))
  const token = mail.text.match(/^([A-Za-z0-9_-]{43})\s*$/m)?.[1]
  await call(base, "POST", "/v1/invitations/accept", member.token, { token })
  // The catalog's keys are independent: 8 at a time. Roles go in order (parents before children).
  let next = 0
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < policy.catalog.length) {
        const key = policy.catalog[next++]
        await call(base, "POST", `${path}/permissions`, owner.token, { key })
      }
    })
  )
  const ids = new Map<string, string>()
  for (const role of policy.roles) {
    const created = await call<{ role: { id: string } }>(base, "POST", `${path}/roles`, owner.token, {
      name: role.name,
      parentIds: role.parents.map((parent) => ids.get(parent)),
      grants: role.grants
    })
    ids.set(role.id, created.role.id)
  }
  for (const assignment of policy.assignments) {
    await call(base, "POST", `${path}/assignments`, owner.token, {
      userId: member.userId,
      roleId: ids.get(assignment.roleId),
      ...(assignment.scope === undefined ? {} : { scope: assignment.scope })
    })
  }
  const ms = performance.now() - began
  return { org: org.id, owner, member, ms }
}

const checkBody = (input: CheckInput, userId: string) => ({
  userId,
  permission: input.permission,
  ...(input.resource === undefined ? {} : { resource: { type: input.resource.type, id: input.resource.id } })
})

const OVER_BARE_US = 40
const CASBIN_BAR = 10
const BATCH_TARGET = 200_000
const LIVE_TARGET_US = 15
const SOCKETS = positiveInt("BENCH_LIVE_SOCKETS", 500)
const RATE = 18

/** Runs part 3 and returns its report lines. */
export const httpPart = async (policy: HttpPolicy, plan: Rounds) => {
  const postgres = process.env.BENCH_DATABASE_URL ? undefined : await startPostgres()
  const redis = process.env.BENCH_REDIS_URL ? undefined : await startRedis()
  const servers: Array<Server> = []
  let live: Awaited<ReturnType<typeof openLive>> | undefined
  let floorLive: Awaited<ReturnType<typeof openLive>> | undefined
  try {
    const dataDir = mkdtempSync(join(tmpdir(), "bench-check-"))
    tempDirs.push(dataDir)
    const wsPort = await freePort()
    const ours = await startServer("ours", ourServer(), await freePort(), {
      WS_PORT: String(wsPort),
      DATA_DIR: dataDir,
      DATABASE_URL: process.env.BENCH_DATABASE_URL ?? postgres!.url,
      REDIS_URL: process.env.BENCH_REDIS_URL ?? redis!.url,
      JWT_ISSUER: "http://bench.local",
      REDIS_KEY_PREFIX: `bench:${Date.now()}:`,
      AUTH_IP_RATE_LIMIT: "100000000",
      MAX_SOCKETS_PER_USER: String(SOCKETS + 10),
      LOG_LEVEL: "warning"
    })
    servers.push(ours)
    const { org, owner, member, ms } = await buildPolicy(ours.base, dataDir, policy)
    const path = `/v1/orgs/${org}/check`
    const single = { ...checkBody(policy.probe, member.userId), consistency: "cached" }
    const answer = await call<{ allowed: boolean; revision: string }>(ours.base, "POST", path, owner.token, single)
    if (answer.allowed !== policy.probeAllowed) throw new Error(`the server answers ${answer.allowed} to the probe`)
    const batch = { checks: policy.batch.map((input) => checkBody(input, member.userId)), consistency: "cached" }
    const batched = await call<{ results: Array<{ allowed: boolean }> }>(
      ours.base,
      "POST",
      `${path}/batch`,
      owner.token,
      batch
    )
    const batchAllowed = batched.results.filter((r) => r.allowed).length

    const bare = await startServer("bare HttpApi", "bench/servers/effect-http.ts", await freePort(), { SERVER: "node" })
    servers.push(bare)
    const bareAnswer = await call<{ allowed: boolean }>(bare.base, "POST", path, owner.token, single)
    if (bareAnswer.allowed !== true) throw new Error("the bare HttpApi endpoint did not answer")
    const policyFile = join(dataDir, "casbin.json")
    writeFileSync(policyFile, JSON.stringify({ policies: policy.casbin.policies, groupings: policy.casbin.groupings }))
    const casbin = await startServer("node:http + casbin", "bench/servers/node-casbin.ts", await freePort(), {
      CASBIN_POLICY: policyFile
    })
    servers.push(casbin)
    const casbinBody = { request: policy.casbin.request }
    const reply = await call<{ allowed: boolean }>(casbin.base, "POST", "/check", undefined, casbinBody)
    if (reply.allowed !== policy.probeAllowed) throw new Error(`casbin answers ${reply.allowed} to the probe`)

    live = await openLive("ours: live socket check", {
      server: ours,
      wsUrl: `ws://127.0.0.1:${wsPort}/ws`,
      token: member.token,
      organizationId: org,
      sockets: SOCKETS,
      rate: RATE,
      checks: policy.batch
    })
    const floor = await startServer("uWS floor", "bench/servers/uws-live-floor.ts", await freePort(), {})
    servers.push(floor)
    floorLive = await openLive("uWS alone: constant check.result", {
      server: floor,
      wsUrl: floor.base.replace("http:", "ws:") + "/ws",
      token: "floor",
      organizationId: org,
      sockets: SOCKETS,
      rate: RATE,
      checks: policy.batch
    })
    const auth = { authorization: `Bearer ${owner.token}`, ...json }
    const post = (body: unknown) => ({ method: "POST", headers: auth, body: JSON.stringify(body) })
    const cases: ReadonlyArray<Case> = [
      { name: "ours: POST …/check (cached)", server: ours, path, connections: 50, request: post(single) },
      { name: "bare HttpApi: POST …/check", server: bare, path, connections: 50, request: post(single) },
      { name: "node:http + casbin enforce", server: casbin, path: "/check", request: post(casbinBody) },
      {
        name: "ours: POST …/check/batch (100, cached)",
        server: ours,
        path: `${path}/batch`,
        connections: 20,
        request: post(batch)
      },
      live.liveCase,
      floorLive.liveCase
    ]
    const done = await interleave(cases, plan)
    const at = (i: number) => done[i]!
    const [check, bareDone, casbinDone, batchDone, liveDone, floorDone] = [at(0), at(1), at(2), at(3), at(4), at(5)]
    const checksPerSecond = batchDone.row.result.requests.average * policy.batch.length
    const batchUs = cpuPerRequest(batchDone.row) / policy.batch.length
    const liveUs = cpuPerRequest(liveDone.row)
    const verdict = (met: boolean) => (met ? "met" : "NOT met")
    const perCheck = (d: Done) => d.rounds.map((m) => num(cpuPerRequest(m) / policy.batch.length, 2)).join(", ")
    return [
      "",
      "part 3 — POST /v1/orgs/{org}/check through HTTP and `check` over live sockets (real Postgres and Redis, throwaway, fsync off)",
      `policy built through the API in ${num(ms / 1000, 1)} s: ${num(policy.catalog.length)} keys, ` +
        `${policy.roles.length} roles, ${policy.assignments.length} assignments; the probe (${policy.probe.permission} on ` +
        `${policy.probe.resource ? `${policy.probe.resource.type}/${policy.probe.resource.id}` : "the organization"}) answers ` +
        `${answer.allowed}; the batch allows ${batchAllowed} of ${policy.batch.length}`,
      `load: autocannon in its own process, pipelining 1; every case warmed ${plan.warmup} s, then ${plan.rounds} rounds of ` +
        `${plan.duration} s, cases taking turns (order rotating each round)`,
      `live: ${live.sessions} sessions of the member (${live.retries} reopened after a drop before hello), ` +
        `each with one check in flight and at most ${RATE}/s, cycling through the batch's 100 checks; ` +
        `sessions idle: ${num(live.idleCpuPercent, 1)}% of a core; rows "requests" = checks answered`,
      "",
      table(done.map((d) => d.row)),
      "",
      ...roundLines(done),
      "",
      overFloor("POST …/check (cached) over bare HttpApi", check, bareDone, OVER_BARE_US),
      cheaper("POST …/check (cached) vs node:http + casbin", check, casbinDone, CASBIN_BAR),
      `batch of 100 (cached): ${num(checksPerSecond)} checks/s (target ≥ ${num(BATCH_TARGET)}): ` +
        `${verdict(checksPerSecond >= BATCH_TARGET)} — ${num(batchDone.row.result.requests.average)} requests/s, ` +
        `${num(batchUs, 2)} µs of server CPU per check (per round ${perCheck(batchDone)}), ` +
        `${num(1e6 / batchUs)} checks/s per core at that cost`,
      `live socket check: ${num(liveUs, 1)} µs of server CPU per check (target ≤ ${LIVE_TARGET_US}): ` +
        `${verdict(liveUs <= LIVE_TARGET_US)} — ${num(liveDone.row.result.requests.average)} checks/s answered; ` +
        `per round ${liveDone.rounds.map((m) => num(cpuPerRequest(m), 1)).join(", ")}`,
      `  beside uWebSockets.js alone answering a constant check.result to the same client: ` +
        `${num(cpuPerRequest(floorDone.row), 1)} µs per message (per round ` +
        `${floorDone.rounds.map((m) => num(cpuPerRequest(m), 1)).join(", ")}); ours over it: ` +
        `+${num(liveUs - cpuPerRequest(floorDone.row), 1)} µs`
    ]
  } finally {
    await live?.stop()
    await floorLive?.stop()
    await stopServers(servers)
    await redis?.stop()
    await postgres?.stop()
  }
}
