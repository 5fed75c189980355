/**
 * Our server for bench:push and bench:sessions: one node on throwaway Postgres and Redis (or
 * BENCH_DATABASE_URL / BENCH_REDIS_URL), and an organization set up through the public API the way
 * users would: an owner, the permissions `docs:read` and `docs:write`, a role `reader` granting
 * `docs:read`, and `users` members who each signed up, were invited with `reader` and accepted the
 * invitation from its mail.
 */
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { readMailbox, tokenIn } from "../../test/support/Mailbox.ts"
import { startPostgres, startRedis } from "../../test/support/Servers.ts"
import { freePort, isRunning, ourServer, probe, startNode, stop, tempDirs } from "../harness.ts"
import { processTree } from "./workers.ts"

export const PASSWORD = "a benchmark passphrase"
const json = { "content-type": "application/json" }

export const call = async <A>(base: string, method: string, path: string, token?: string, body?: unknown) => {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { ...json, ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) })
  })
  const text = await response.text()
  if (response.status >= 300) throw new Error(`${method} ${path}: ${response.status} ${text}`)
  return (text === "" ? {} : JSON.parse(text)) as A
}

/** Runs `task` over `items` with at most `width` at once, in order of the items. */
export const pool = async <A, B>(items: ReadonlyArray<A>, width: number, task: (item: A, i: number) => Promise<B>) => {
  const out = new Array<B>(items.length)
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        const i = next++
        out[i] = await task(items[i]!, i)
      }
    })
  )
  return out
}

export type Metrics = Record<string, number>

export const metrics = async (wsBase: string): Promise<Metrics> => {
  const answer = await probe(`${wsBase}/metrics`)
  if (answer === undefined || answer.status !== 200) throw new Error(`GET ${wsBase}/metrics failed`)
  const out: Metrics = {}
  for (const line of answer.body.split("\n")) {
    const match = /^([a-z_]+) (\d+(?:\.\d+)?)$/.exec(line)
    if (match !== null) out[match[1]!] = Number(match[2])
  }
  return out
}

export interface Stack {
  readonly base: string
  readonly wsBase: string
  readonly wsUrl: string
  readonly dataDir: string
  readonly server: ReturnType<typeof startNode>
  readonly pid: number
  readonly given: { readonly postgres: boolean; readonly redis: boolean }
  /** The throwaway Postgres (postmaster and backends) and Redis processes; empty when given by URL. */
  readonly servicePids: () => { readonly postgres: ReadonlyArray<number>; readonly redis: ReadonlyArray<number> }
  /** The server's log lines at WARN and above so far, counted by level and first line. */
  readonly logCounts: () => ReadonlyMap<string, number>
  readonly logCauses: () => ReadonlyMap<string, ReadonlyArray<string>>
  readonly stop: () => Promise<void>
}

/**
 * Counts log lines like `[07:24:52.387] WARN (#35): message` by level and message (ids and numbers
 * blanked), and keeps, for each, the error lines of its first occurrence's cause (`causes`).
 */
const countLogs = (
  stream: NodeJS.ReadableStream,
  dataDir: string,
  counts: Map<string, number>,
  causes: Map<string, Array<string>>
) => {
  let rest = ""
  let capturing: { lines: Array<string>; left: number } | undefined
  stream.on("data", (chunk: Buffer) => {
    const lines = (rest + chunk.toString("utf8")).split("\n")
    rest = lines.pop() ?? ""
    for (const raw of lines) {
      const line = raw.replaceAll(dataDir, "$DATA_DIR")
      const match = /^\[[\d:.]+\] (WARN|ERROR|FATAL) \(#\d+\): (.*)$/.exec(line)
      if (match === null) {
        if (capturing !== undefined && capturing.left > 0 && /(Error|error)\b|timeout/.test(line)) {
          capturing.lines.push(line.trim().slice(0, 200))
          capturing.left -= 1
        }
        continue
      }
      capturing = undefined
      const key = `${match[1]} ${match[2]!
        .replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, "…")
        .replace(/\d+/g, "N")
        .slice(0, 160)}`
      counts.set(key, (counts.get(key) ?? 0) + 1)
      if (!causes.has(key)) {
        const kept: Array<string> = []
        causes.set(key, kept)
        capturing = { lines: kept, left: 3 }
      }
    }
  })
}

/** A log summary: `count× LEVEL message`, and under each the error lines of its first cause. */
export const logLines = (counts: ReadonlyMap<string, number>, causes: ReadonlyMap<string, ReadonlyArray<string>>) =>
  [...counts]
    .filter(([, count]) => count > 0)
    .flatMap(([key, count]) => [
      `  ${count.toLocaleString("en-US")}× ${key}`,
      ...(causes.get(key) ?? []).map((line) => `      ${line}`)
    ])

export const startStack = async (env: Record<string, string>): Promise<Stack> => {
  const postgres = process.env.BENCH_DATABASE_URL ? undefined : await startPostgres()
  const redis = process.env.BENCH_REDIS_URL
    ? undefined
    : await startRedis().catch(async (error) => {
        await postgres?.stop()
        throw error
      })
  const stopServices = async () => {
    await redis?.stop()
    await postgres?.stop()
  }
  try {
    const dataDir = mkdtempSync(join(tmpdir(), "bench-live-"))
    tempDirs.push(dataDir)
    const port = await freePort()
    const wsPort = await freePort()
    const base = `http://127.0.0.1:${port}`
    const wsBase = `http://127.0.0.1:${wsPort}`
    const server = startNode([ourServer()], {
      PORT: String(port),
      WS_PORT: String(wsPort),
      HOST: "127.0.0.1",
      DATA_DIR: dataDir,
      DATABASE_URL: process.env.BENCH_DATABASE_URL ?? postgres!.url,
      REDIS_URL: process.env.BENCH_REDIS_URL ?? redis!.url,
      JWT_ISSUER: "http://bench.local",
      REDIS_KEY_PREFIX: `bench:${Date.now()}:`,
      AUTH_IP_RATE_LIMIT: "100000000",
      LOG_LEVEL: "warning",
      ...env
    })
    const logs = new Map<string, number>()
    const causes = new Map<string, Array<string>>()
    countLogs(server.child.stdout!, dataDir, logs, causes)
    countLogs(server.child.stderr!, dataDir, logs, causes)
    const began = performance.now()
    while ((await probe(`${base}/health/live`)) === undefined || (await probe(`${wsBase}/metrics`)) === undefined) {
      if (!isRunning(server.child)) throw new Error(`the server exited during start:\n${server.output()}`)
      if (performance.now() - began > 60_000) throw new Error(`the server is not up after 60 s:\n${server.output()}`)
      await sleep(100)
    }
    return {
      base,
      wsBase,
      wsUrl: `ws://127.0.0.1:${wsPort}/ws`,
      dataDir,
      server,
      pid: server.child.pid!,
      given: { postgres: postgres === undefined, redis: redis === undefined },
      servicePids: () => {
        const pgPort = postgres === undefined ? undefined : new URL(postgres.url).port
        return {
          postgres:
            pgPort === undefined
              ? []
              : processTree((cmd) => /(^|\/)postgres /.test(cmd) && cmd.includes(`-p ${pgPort} `)),
          redis:
            redis === undefined
              ? []
              : processTree((cmd) => /(^|\/)redis-server /.test(cmd) && cmd.includes(`:${redis.port}`))
        }
      },
      logCounts: () => logs,
      logCauses: () => causes,
      stop: async () => {
        await stop(server)
        await stopServices()
      }
    }
  } catch (error) {
    await stopServices()
    throw error
  }
}

export interface Organization {
  readonly organizationId: string
  readonly ownerToken: string
  readonly roleId: string
  /** One access token per member. */
  readonly tokens: ReadonlyArray<string>
  readonly seconds: number
}

const say = (text: string) => process.stderr.write(`${text}\n`)

/** Builds the organization of `users` members holding `reader`, through the API. */
export const buildOrganization = async (stack: Stack, users: number): Promise<Organization> => {
  const { base } = stack
  const began = performance.now()
  const stamp = Date.now().toString(36)
  const signIn = async (email: string) => {
    await call(base, "POST", "/v1/auth/register", undefined, { email, password: PASSWORD, name: "Bench" })
    return (
      await call<{ accessToken: string }>(base, "POST", "/v1/auth/login", undefined, { email, password: PASSWORD })
    ).accessToken
  }
  const ownerToken = await signIn(`owner-${stamp}@bench.example`)
  const org = await call<{ id: string }>(base, "POST", "/v1/orgs", ownerToken, {
    name: "Bench",
    slug: `bench-${stamp}`
  })
  const path = `/v1/orgs/${org.id}`
  for (const key of ["docs:read", "docs:write"]) await call(base, "POST", `${path}/permissions`, ownerToken, { key })
  const reader = await call<{ role: { id: string } }>(base, "POST", `${path}/roles`, ownerToken, {
    name: "reader",
    grants: [{ permission: "docs:read", effect: "allow" }],
    parentIds: []
  })
  const emails = Array.from({ length: users }, (_, i) => `member-${i}-${stamp}@bench.example`)
  say(`setup: signing up ${users} members (argon2id: register and login each)`)
  const tokens = await pool(emails, 8, signIn)
  say(`setup: inviting them with the role reader`)
  await pool(emails, 8, (email) =>
    call(base, "POST", `${path}/invitations`, ownerToken, { email, roleIds: [reader.role.id] })
  )
  const invitations = new Map<string, string>()
  const deadline = Date.now() + 60_000
  while (invitations.size < users) {
    for (const mail of readMailbox(stack.dataDir)) {
      if (!/invit/i.test(mail.subject)) continue
      const email = emails.find((e) => mail.to.includes(e))
      if (email !== undefined) invitations.set(email, tokenIn(mail))
    }
    if (invitations.size < users) {
      if (Date.now() > deadline) throw new Error(`only ${invitations.size} of ${users} invitation mails after 60 s`)
      await sleep(250)
    }
  }
  say(`setup: accepting ${users} invitations`)
  await pool(emails, 8, (email, i) =>
    call(base, "POST", "/v1/invitations/accept", tokens[i], { token: invitations.get(email) })
  )
  return {
    organizationId: org.id,
    ownerToken,
    roleId: reader.role.id,
    tokens,
    seconds: (performance.now() - began) / 1000
  }
}
