/**
 * bench:memory — the resident memory of an idle server, as the image runs it (built, `node
 * --max-semi-space-size=1 dist/src/main.js`), beside what Node.js and the embedded database cost alone.
 *
 * Variants, each started BENCH_RUNS times (default 3) in turn, left idle for BENCH_IDLE seconds
 * (default 30) after /health/ready answers, then VmRSS read from /proc:
 *  - ours on Postgres and Redis (throwaway, as the tests start them);
 *  - ours on the embedded default (PGlite in DATA_DIR, in-process bus): the first start on an empty
 *    DATA_DIR (PGlite's initdb runs in the process) and a restart on the same DATA_DIR;
 *  - node:http alone: `http.createServer().listen()`, the floor of any Node.js server;
 *  - PGlite alone: the embedded database opened as ours opens it, one query, nothing else (first
 *    start and restart).
 *
 *   yarn build && yarn bench:memory
 */

import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
import { startPostgres, startRedis } from "../test/support/Servers.ts"
import { freePort, isRunning, loadAverage, positiveInt, probe, revision, root, runBench, tempDirs } from "./harness.ts"

const RUNS = positiveInt("BENCH_RUNS", 3)
const IDLE_S = positiveInt("BENCH_IDLE", 30)

const rssMiB = (pid: number) => {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith("VmRSS:"))
  return Number(line?.split(/\s+/)[1] ?? 0) / 1024
}

/** Starts `node args` with env, waits until `ready` answers, idles, reads RSS, stops it. */
const measure = async (args: Array<string>, env: Record<string, string>, ready: string | undefined) => {
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    stdio: ["ignore", "ignore", "pipe"]
  })
  let errors = ""
  child.stderr.on("data", (chunk) => {
    errors = (errors + chunk).slice(-4000)
  })
  try {
    const began = performance.now()
    while (ready !== undefined && (await probe(ready))?.status !== 200) {
      if (!isRunning(child)) throw new Error(`exited during start: ${errors}`)
      if (performance.now() - began > 300_000) throw new Error(`not ready after 300 s: ${errors}`)
      await sleep(200)
    }
    await sleep(IDLE_S * 1000)
    if (!isRunning(child)) throw new Error(`exited while idle: ${errors}`)
    return rssMiB(child.pid!)
  } finally {
    child.kill("SIGTERM")
    await new Promise((resolve) => (isRunning(child) ? child.once("exit", resolve) : resolve(undefined)))
  }
}

const temp = (prefix: string) => {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  tempDirs.push(dir)
  return dir
}

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const pgliteAlone = `
import { PGlite } from "@electric-sql/pglite"
const db = await PGlite.create(process.env.DIR, { startParams: [...PGlite.defaultStartParams, "-c", "shared_buffers=16MB"] })
await db.query("select 1")
setInterval(() => {}, 1 << 30)`

const main = async () => {
  if (!existsSync(join(root, "dist/src/main.js")))
    throw new Error("run `yarn build` first: this measures the built server")
  const postgres = await startPostgres()
  const redis = await startRedis()
  const results = new Map<string, Array<number>>()
  const record = (name: string, mib: number) => results.set(name, [...(results.get(name) ?? []), mib])
  const node = ["--max-semi-space-size=1", "dist/src/main.js"]
  try {
    console.log(`bench:memory — idle RSS, ${new Date().toISOString()}, ours at ${revision()}`)
    console.log(`load average ${loadAverage()} before`)
    for (let run = 1; run <= RUNS; run++) {
      const started = async (embedded: boolean, dataDir: string) => {
        const port = await freePort()
        const env: Record<string, string> = {
          PORT: String(port),
          WS_PORT: String(await freePort()),
          HOST: "127.0.0.1",
          DATA_DIR: dataDir,
          LOG_LEVEL: "warning",
          ...(embedded
            ? {}
            : {
                DATABASE_URL: postgres.url,
                REDIS_URL: redis.url,
                REDIS_KEY_PREFIX: `memory:${run}:`,
                JWT_ISSUER: "http://bench.local"
              })
        }
        return measure(node, env, `http://127.0.0.1:${port}/health/ready`)
      }
      record("ours, Postgres + Redis", await started(false, temp("bench-memory-")))
      // The first start on an empty DATA_DIR runs PGlite's initdb in the same process; later starts do not.
      const dataDir = temp("bench-memory-")
      record("ours, embedded, first start (initdb)", await started(true, dataDir))
      record("ours, embedded, restart", await started(true, dataDir))
      record("node:http alone", await measure(["-e", "require('node:http').createServer().listen(0)"], {}, undefined))
      const dir = temp("bench-memory-pglite-")
      const alone = ["--input-type=module", "-e", pgliteAlone]
      record("PGlite alone, first start (initdb)", await measure(alone, { DIR: dir }, undefined))
      record("PGlite alone, restart", await measure(alone, { DIR: dir }, undefined))
    }
  } finally {
    await redis.stop()
    await postgres.stop()
  }
  console.log(`${RUNS} runs each, idle ${IDLE_S} s after ready; load average ${loadAverage()} after\n`)
  console.log("| process | RSS MiB (median) | runs |")
  console.log("|---|---:|---|")
  for (const [name, xs] of results)
    console.log(`| ${name} | ${median(xs).toFixed(0)} | ${xs.map((x) => x.toFixed(0)).join(", ")} |`)
}

runBench(main)
