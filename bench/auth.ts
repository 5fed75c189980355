/**
 * bench:auth — the authenticated path and logins through the whole server, on real Postgres and
 * Redis, each beside floors of the same request:
 *
 *  - GET /v1/me with a bearer token seen before (EdDSA verify, cached by the token's hash, the
 *    revocation check, one user read), against the bare HttpApi floor: an HttpApi endpoint that reads
 *    the `authorization` header and answers a constant `Me`, no verification, no middleware
 *    (bench/servers/effect-http.ts), target ≤ 50 µs over it; and against a bare node:http server that
 *    only runs the jose verify (bench/servers/node-jose.ts);
 *  - POST /v1/auth/login with the right password (argon2id m=19456 t=2 p=1, a new session and
 *    tokens), against a bare node:http server that only runs the argon2 verify
 *    (bench/servers/node-argon2.ts);
 *  - GET /health/live on bare node:http, the baseline of bench:http, for scale.
 *
 * Postgres and Redis: BENCH_DATABASE_URL / BENCH_REDIS_URL, or throwaway ones from the Debian
 * binaries (as the tests start them). Every server starts once; the cases take turns in interleaved
 * rounds (bench/rounds.ts), one under load at a time, autocannon in its own process.
 *
 *   yarn bench:auth       # BENCH_ROUNDS=3 BENCH_DURATION=5 by default: about 3 minutes
 */

import { mkdtempSync } from "node:fs"
import { availableParallelism, tmpdir } from "node:os"
import { join } from "node:path"
import { Effect } from "effect"
import { generateKeys } from "../src/layers/auth/Keys.ts"
import { startPostgres, startRedis } from "../test/support/Servers.ts"
import {
  cpuModel,
  freePort,
  loadAverage,
  OUR_SERVER_LABEL,
  ourServer,
  positiveInt,
  ratio,
  revision,
  runBench,
  table,
  tempDirs,
  version
} from "./harness.ts"
import { type Case, interleave, overFloor, roundLines, type Server, startServer, stopServers } from "./rounds.ts"

const ROUNDS = positiveInt("BENCH_ROUNDS", 3)
const DURATION = positiveInt("BENCH_DURATION", 5)
const WARMUP = 3
const OVER_BARE_US = 50
const PASSWORD = "a benchmark passphrase"
const EMAIL = "bench@example.com"

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
  const servers: Array<Server> = []
  try {
    const keys = await Effect.runPromise(generateKeys)
    const jwtKeys = JSON.stringify(keys.jwt)
    const dataDir = mkdtempSync(join(tmpdir(), "bench-auth-"))
    tempDirs.push(dataDir)
    const start = async (name: string, script: string, env: Record<string, string>) => {
      const server = await startServer(name, script, await freePort(), env)
      servers.push(server)
      return server
    }
    const ours = await start("ours", ourServer(), {
      WS_PORT: String(await freePort()),
      DATA_DIR: dataDir,
      DATABASE_URL: process.env.BENCH_DATABASE_URL ?? postgres!.url,
      REDIS_URL: process.env.BENCH_REDIS_URL ?? redis!.url,
      JWT_ISSUER: "http://bench.local",
      REDIS_KEY_PREFIX: `bench:${Date.now()}:`,
      JWT_PRIVATE_KEYS: jwtKeys,
      MFA_ENCRYPTION_KEY: keys.mfaKey,
      AUTH_IP_RATE_LIMIT: "100000000",
      LOG_LEVEL: "warning"
    })
    const bare = await start("bare HttpApi", "bench/servers/effect-http.ts", { SERVER: "node" })
    const jose = await start("node:http + jose", "bench/servers/node-jose.ts", {
      JWT_PRIVATE_KEYS: jwtKeys,
      JWT_AUDIENCE: "live-permission-server"
    })
    const argon2 = await start("node:http + argon2", "bench/servers/node-argon2.ts", { BENCH_PASSWORD: PASSWORD })
    const nodeHttp = await start("node:http", "bench/servers/node-http.ts", {})

    const token = await signIn(ours.base)
    const bearer = { headers: { authorization: `Bearer ${token}` } }
    const me = await fetch(`${ours.base}/v1/me`, bearer)
    if (me.status !== 200) throw new Error(`GET /v1/me answered ${me.status}: ${await me.text()}`)
    const login = { method: "POST", headers: json, body: loginBody }
    const cases: ReadonlyArray<Case> = [
      { name: "ours: GET /v1/me", server: ours, path: "/v1/me", connections: 50, request: bearer },
      { name: "bare HttpApi: GET /v1/me", server: bare, path: "/v1/me", connections: 50, request: bearer },
      { name: "node:http + jose verify", server: jose, path: "/v1/me", connections: 50, request: bearer },
      { name: "ours: POST /v1/auth/login", server: ours, path: "/v1/auth/login", connections: 8, request: login },
      { name: "node:http + argon2 verify", server: argon2, path: "/v1/auth/login", connections: 8, request: login },
      { name: "node:http GET /health/live", server: nodeHttp, path: "/health/live", connections: 50 }
    ]
    const done = await interleave(cases, { rounds: ROUNDS, duration: DURATION, warmup: WARMUP })
    const at = (i: number) => done[i]!
    const [oursMe, bareMe, joseMe, oursLogin, argon2Login, health] = [at(0), at(1), at(2), at(3), at(4), at(5)]

    console.log(
      [
        "",
        `bench:auth — ${date}`,
        `machine: ${cpuModel()}, ${availableParallelism()} cores, Node ${process.version}; ` +
          `load average ${loadBefore} before, ${loadAverage()} after`,
        `versions: effect ${version("effect")}, jose ${version("jose")}, @node-rs/argon2 ${version("@node-rs/argon2")}`,
        `ours: ${OUR_SERVER_LABEL} at ${code}, Postgres ${process.env.BENCH_DATABASE_URL ? "(given)" : "(throwaway, fsync off)"}, ` +
          `Redis ${process.env.BENCH_REDIS_URL ? "(given)" : "(throwaway)"}, LOG_LEVEL=warning; the same token on every request`,
        "bare HttpApi: bench/servers/effect-http.ts on NodeHttpServer, GET /v1/me reads `authorization` and answers a constant Me",
        `load: autocannon in its own process, pipelining 1; every case warmed ${WARMUP} s, then ${ROUNDS} rounds of ` +
          `${DURATION} s each, cases taking turns (order rotating each round)`,
        "logins: argon2id m=19456 KiB, t=2, p=1; ours runs at most 4 hashes at once, the bare server does not limit them",
        "",
        table(done.map((d) => d.row)),
        "",
        ...roundLines(done),
        "",
        overFloor("GET /v1/me over bare HttpApi", oursMe, bareMe, OVER_BARE_US),
        ratio(oursMe.row, joseMe.row),
        ratio(oursLogin.row, argon2Login.row),
        ratio(oursMe.row, health.row),
        "",
        `total ${((performance.now() - began) / 1000).toFixed(0)} s`
      ].join("\n")
    )
  } finally {
    await stopServers(servers)
    await redis?.stop()
    await postgres?.stop()
  }
}

runBench(main)
