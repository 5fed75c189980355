/**
 * bench:auth — the authenticated path and logins through the whole server, on real Postgres and
 * Redis, each beside the bare floor of the same work:
 *
 *  - GET /v1/me with a bearer token (EdDSA verify + revocation check + one user read), against a
 *    bare node:http server that only runs the jose verify (bench/servers/node-jose.ts);
 *  - POST /v1/auth/login with the right password (argon2id m=19456 t=2 p=1, a new session and
 *    tokens), against a bare node:http server that only runs the argon2 verify
 *    (bench/servers/node-argon2.ts);
 *  - GET /health/live on bare node:http, the baseline of bench:http.
 *
 * Postgres and Redis: BENCH_DATABASE_URL / BENCH_REDIS_URL, or throwaway ones from the Debian
 * binaries (as the tests start them). One server at a time; autocannon in its own process.
 *
 *   yarn bench:auth                  # BENCH_DURATION=10 by default
 */

import { mkdtempSync } from "node:fs"
import { availableParallelism, tmpdir } from "node:os"
import { join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { Effect } from "effect"
import { generateKeys } from "../src/layers/auth/Keys.ts"
import { startPostgres, startRedis } from "../test/support/Servers.ts"
import {
  cpuModel,
  freePort,
  isRunning,
  loadAverage,
  positiveInt,
  probe,
  type Row,
  ratio,
  revision,
  runBench,
  runLoad,
  startNode,
  stop,
  table,
  tempDirs,
  version
} from "./harness.ts"
import type { LoadRequest } from "./load.ts"

const DURATION = positiveInt("BENCH_DURATION", 10)
const WARMUP = 3
const PASSWORD = "a benchmark passphrase"
const EMAIL = "bench@example.com"

interface Case {
  readonly name: string
  readonly path: string
  readonly connections: number
  readonly request: LoadRequest
}

/** Starts one server, lets `prepare` set it up and name the cases, then measures each case. */
const measure = async (
  name: string,
  script: string,
  env: Record<string, string>,
  port: number,
  prepare: (base: string) => Promise<ReadonlyArray<Case>>
): Promise<Array<Row>> => {
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
      process.stderr.write(`${c.name}: ${c.connections} connections, warm-up ${WARMUP} s, measure ${DURATION} s\n`)
      await runLoad(`${base}${c.path}`, server.child.pid!, WARMUP, c.connections, c.request)
      const measured = await runLoad(`${base}${c.path}`, server.child.pid!, DURATION, c.connections, c.request)
      if (!isRunning(server.child)) throw new Error(`${name} exited under load:\n${server.output()}`)
      rows.push({ name: c.name, contentType: "", ...measured })
    }
    return rows
  } finally {
    await stop(server)
  }
}

const json = { "content-type": "application/json" }
const loginBody = JSON.stringify({ email: EMAIL, password: PASSWORD })

/** Registers the bench user and returns an access token for it. */
const signIn = async (base: string) => {
  const post = (path: string, body: unknown) =>
    fetch(`${base}${path}`, { method: "POST", headers: json, body: JSON.stringify(body) })
  await post("/v1/auth/register", { email: EMAIL, password: PASSWORD, name: "Bench" })
  const reply = (await (await post("/v1/auth/login", { email: EMAIL, password: PASSWORD })).json()) as {
    accessToken?: string
  }
  if (reply.accessToken === undefined) throw new Error(`login failed: ${JSON.stringify(reply)}`)
  return reply.accessToken
}

const main = async () => {
  const began = performance.now()
  const loadBefore = loadAverage()
  const code = revision()
  const date = new Date().toISOString()
  const postgres = process.env.BENCH_DATABASE_URL ? undefined : await startPostgres()
  const redis = process.env.BENCH_REDIS_URL ? undefined : await startRedis()
  try {
    const keys = await Effect.runPromise(generateKeys)
    const jwtKeys = JSON.stringify(keys.jwt)
    const dataDir = mkdtempSync(join(tmpdir(), "bench-auth-"))
    tempDirs.push(dataDir)
    let token = ""

    const [me, login] = (await measure(
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
        JWT_PRIVATE_KEYS: jwtKeys,
        MFA_ENCRYPTION_KEY: keys.mfaKey,
        AUTH_IP_RATE_LIMIT: "100000000",
        LOG_LEVEL: "warning"
      },
      await freePort(),
      async (base) => {
        token = await signIn(base)
        return [
          {
            name: "ours: GET /v1/me",
            path: "/v1/me",
            connections: 50,
            request: { headers: { authorization: `Bearer ${token}` } }
          },
          {
            name: "ours: POST /v1/auth/login",
            path: "/v1/auth/login",
            connections: 8,
            request: { method: "POST", headers: json, body: loginBody }
          }
        ]
      }
    )) as [Row, Row]

    const [jose] = (await measure(
      "node:http + jose",
      "bench/servers/node-jose.ts",
      { JWT_PRIVATE_KEYS: jwtKeys, JWT_AUDIENCE: "live-permission-server" },
      await freePort(),
      async () => [
        {
          name: "node:http + jose verify",
          path: "/v1/me",
          connections: 50,
          request: { headers: { authorization: `Bearer ${token}` } }
        }
      ]
    )) as [Row]

    const [argon2] = (await measure(
      "node:http + argon2",
      "bench/servers/node-argon2.ts",
      { BENCH_PASSWORD: PASSWORD },
      await freePort(),
      async () => [
        {
          name: "node:http + argon2 verify",
          path: "/v1/auth/login",
          connections: 8,
          request: { method: "POST", headers: json, body: loginBody }
        }
      ]
    )) as [Row]

    const [bare] = (await measure("node:http", "bench/servers/node-http.ts", {}, await freePort(), async () => [
      { name: "node:http GET /health/live", path: "/health/live", connections: 50, request: {} }
    ])) as [Row]

    console.log(
      [
        "",
        `bench:auth — ${date}`,
        `machine: ${cpuModel()}, ${availableParallelism()} cores, Node ${process.version}; ` +
          `load average ${loadBefore} before, ${loadAverage()} after`,
        `versions: effect ${version("effect")}, jose ${version("jose")}, @node-rs/argon2 ${version("@node-rs/argon2")}`,
        `ours: node --import tsx src/main.ts at ${code}, Postgres ${process.env.BENCH_DATABASE_URL ? "(given)" : "(throwaway, fsync off)"}, ` +
          `Redis ${process.env.BENCH_REDIS_URL ? "(given)" : "(throwaway)"}, LOG_LEVEL=warning`,
        `load: autocannon in its own process, pipelining 1, ${WARMUP} s warm-up then ${DURATION} s measured; one server at a time`,
        "logins: argon2id m=19456 KiB, t=2, p=1; ours runs at most 4 hashes at once, the bare server does not limit them",
        "",
        table([me, jose, login, argon2, bare]),
        "",
        ratio(me, jose),
        ratio(login, argon2),
        ratio(me, bare),
        "",
        `total ${((performance.now() - began) / 1000).toFixed(0)} s`
      ].join("\n")
    )
  } finally {
    await redis?.stop()
    await postgres?.stop()
  }
}

runBench(main)
