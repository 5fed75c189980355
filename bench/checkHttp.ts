/**
 * bench:check part 3 — `POST /v1/orgs/{org}/check` through the whole server, on real Postgres and
 * Redis, with the policy of parts 1 and 2 built through the public API (catalog, roles with their
 * parents and grants, an invited member with five assignments, one scoped).
 *
 * Cases, one server at a time, autocannon in its own process:
 *  - ours: a service (the owner's token, holding `authz:check`) asks about the member: one check
 *    allowed through inheritance on the scoped project; the same with `minRevision`; a batch of 100
 *    checks from the mix per request; and GET /v1/me, the authenticated floor of the same server;
 *  - node:http + casbin: the same policy in node-casbin (CJS, g() last) behind a bare node:http
 *    server without authentication or storage, answering the same check (bench/servers/node-casbin.ts).
 */
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import type { Assignment, CheckInput, Role } from "../src/domain/Decision.ts"
import { waitForMail } from "../test/support/Mailbox.ts"
import { startPostgres, startRedis } from "../test/support/Servers.ts"
import {
  freePort,
  isRunning,
  num,
  probe,
  type Row,
  ratio,
  runLoad,
  startNode,
  stop,
  table,
  tempDirs
} from "./harness.ts"
import type { LoadRequest } from "./load.ts"

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
  for (const key of policy.catalog) await call(base, "POST", `${path}/permissions`, owner.token, { key })
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

interface Case {
  readonly name: string
  readonly path: string
  readonly connections: number
  readonly request: LoadRequest
}

const measure = async (
  name: string,
  script: string,
  env: Record<string, string>,
  seconds: { warmup: number; duration: number },
  prepare: (base: string) => Promise<ReadonlyArray<Case>>
) => {
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const server = startNode([script], { PORT: String(port), ...env })
  const began = performance.now()
  try {
    while ((await probe(`${base}/health/live`)) === undefined) {
      if (!isRunning(server.child)) throw new Error(`${name} exited during start:\n${server.output()}`)
      if (performance.now() - began > 60_000) throw new Error(`${name} not up after 60 s:\n${server.output()}`)
      await sleep(100)
    }
    const rows: Array<Row> = []
    for (const c of await prepare(base)) {
      process.stderr.write(
        `${c.name}: ${c.connections} connections, ${seconds.warmup} s warm-up, ${seconds.duration} s\n`
      )
      await runLoad(`${base}${c.path}`, server.child.pid!, seconds.warmup, c.connections, c.request)
      const measured = await runLoad(`${base}${c.path}`, server.child.pid!, seconds.duration, c.connections, c.request)
      if (!isRunning(server.child)) throw new Error(`${name} exited under load:\n${server.output()}`)
      if (measured.result.non2xx > 0) throw new Error(`${c.name}: ${measured.result.non2xx} answers were not 2xx`)
      rows.push({ name: c.name, contentType: "", ...measured })
    }
    return rows
  } finally {
    await stop(server)
  }
}

const checkBody = (input: CheckInput, userId: string) => ({
  userId,
  permission: input.permission,
  ...(input.resource === undefined ? {} : { resource: { type: input.resource.type, id: input.resource.id } })
})

/** Runs part 3 and returns its report lines. */
export const httpPart = async (policy: HttpPolicy, seconds: { warmup: number; duration: number }) => {
  const postgres = process.env.BENCH_DATABASE_URL ? undefined : await startPostgres()
  const redis = process.env.BENCH_REDIS_URL ? undefined : await startRedis()
  try {
    const dataDir = mkdtempSync(join(tmpdir(), "bench-check-"))
    tempDirs.push(dataDir)
    let built = { ms: 0, org: "" }
    let answers = { single: false, batch: 0 }
    const ours = await measure(
      "ours",
      "src/main.ts",
      {
        WS_PORT: String(await freePort()),
        HOST: "127.0.0.1",
        DATA_DIR: dataDir,
        DATABASE_URL: process.env.BENCH_DATABASE_URL ?? postgres!.url,
        REDIS_URL: process.env.BENCH_REDIS_URL ?? redis!.url,
        JWT_ISSUER: "http://bench.local",
        REDIS_KEY_PREFIX: `bench:${Date.now()}:`,
        AUTH_IP_RATE_LIMIT: "100000000",
        LOG_LEVEL: "warning"
      },
      seconds,
      async (base) => {
        const { org, owner, member, ms } = await buildPolicy(base, dataDir, policy)
        built = { ms, org }
        const single = checkBody(policy.probe, member.userId)
        const path = `/v1/orgs/${org}/check`
        const answer = await call<{ allowed: boolean; revision: string }>(base, "POST", path, owner.token, single)
        if (answer.allowed !== policy.probeAllowed) throw new Error(`the server answers ${answer.allowed} to the probe`)
        const batch = { checks: policy.batch.map((input) => checkBody(input, member.userId)) }
        const batched = await call<{ results: Array<{ allowed: boolean }> }>(
          base,
          "POST",
          `${path}/batch`,
          owner.token,
          batch
        )
        answers = { single: answer.allowed, batch: batched.results.filter((r) => r.allowed).length }
        const auth = { authorization: `Bearer ${owner.token}`, ...json }
        return [
          {
            name: "ours: POST …/check",
            path,
            connections: 50,
            request: { method: "POST", headers: auth, body: JSON.stringify(single) }
          },
          {
            name: "ours: POST …/check, minRevision",
            path,
            connections: 50,
            request: {
              method: "POST",
              headers: auth,
              body: JSON.stringify({ ...single, minRevision: answer.revision })
            }
          },
          {
            name: "ours: POST …/check/batch (100 checks)",
            path: `${path}/batch`,
            connections: 20,
            request: { method: "POST", headers: auth, body: JSON.stringify(batch) }
          },
          { name: "ours: GET /v1/me", path: "/v1/me", connections: 50, request: { headers: auth } }
        ]
      }
    )
    const policyFile = join(dataDir, "casbin.json")
    writeFileSync(policyFile, JSON.stringify({ policies: policy.casbin.policies, groupings: policy.casbin.groupings }))
    const [casbin] = await measure(
      "node:http + casbin",
      "bench/servers/node-casbin.ts",
      { CASBIN_POLICY: policyFile },
      seconds,
      async (base) => {
        const reply = await call<{ allowed: boolean }>(base, "POST", "/check", undefined, {
          request: policy.casbin.request
        })
        if (reply.allowed !== policy.probeAllowed) throw new Error(`casbin answers ${reply.allowed} to the probe`)
        return [
          {
            name: "node:http + casbin enforce",
            path: "/check",
            connections: 50,
            request: { method: "POST", headers: json, body: JSON.stringify({ request: policy.casbin.request }) }
          }
        ]
      }
    )
    const [single, withRevision, batch, me] = ours as [Row, Row, Row, Row]
    const checksPerSecond = batch.result.requests.average * policy.batch.length
    return [
      "",
      "part 3 — POST /v1/orgs/{org}/check through HTTP (real Postgres and Redis, throwaway, fsync off)",
      `policy built through the API in ${num(built.ms / 1000, 1)} s: ${num(policy.catalog.length)} keys, ` +
        `${policy.roles.length} roles, ${policy.assignments.length} assignments; the probe (${policy.probe.permission} on ` +
        `${policy.probe.resource ? `${policy.probe.resource.type}/${policy.probe.resource.id}` : "the organization"}) answers ` +
        `${answers.single}; the batch allows ${answers.batch} of ${policy.batch.length}`,
      `load: autocannon in its own process, pipelining 1, ${seconds.warmup} s warm-up then ${seconds.duration} s measured; one server at a time`,
      "",
      table([single, withRevision, batch, me, casbin!]),
      "",
      `batch: ${num(checksPerSecond)} checks/s (${num(batch.result.requests.average)} requests of ${policy.batch.length})`,
      ratio(single, me),
      ratio(single, casbin!)
    ]
  } finally {
    await redis?.stop()
    await postgres?.stop()
  }
}
