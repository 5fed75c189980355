/**
 * bench:http — what our HTTP stack costs per request on GET /health/live (no I/O behind it), against
 * the bare HttpApi floor (one HttpApi endpoint, no middleware: bench/servers/effect-http.ts) on
 * NodeHttpServer, the same app on UwsHttpServer (src/layers/http/UwsHttpServer.ts), bare node:http,
 * bare uWebSockets.js and Fastify 5.
 *
 * Every server starts once, in its own process (ours: dist/src/main.js, built first, on the embedded PGlite, idle here),
 * and is warmed up; then the servers take turns, round after round with the order rotating
 * (bench/rounds.ts), so a busy moment on this shared machine lands on all of them alike. autocannon
 * runs in another process (bench/load.ts); one server is under load at a time. The figure that
 * decides is server CPU (utime + stime from /proc/<pid>/stat) per request. It prints two verdicts:
 * our stack over the bare HttpApi endpoint (target ≤ 20 µs) and UwsHttpServer against NodeHttpServer
 * for the same app (adopt at ≥ 1.5× cheaper).
 *
 *   yarn bench:http      # BENCH_ROUNDS=4 BENCH_DURATION=5 BENCH_CONNECTIONS=50: about 3 minutes
 *   BENCH_VARIANTS="node:http,HttpApi on UwsHttpServer" yarn bench:http    # a subset, by name
 */
import { mkdtempSync } from "node:fs"
import { availableParallelism, tmpdir } from "node:os"
import { join } from "node:path"
import {
  cpuModel,
  freePort,
  loadAverage,
  OUR_SERVER_LABEL,
  ourServer,
  positiveInt,
  probe,
  revision,
  runBench,
  table,
  tempDirs,
  version
} from "./harness.ts"
import {
  type Case,
  cheaper,
  interleave,
  overFloor,
  roundLines,
  type Server,
  startServer,
  stopServers
} from "./rounds.ts"

const ROUNDS = positiveInt("BENCH_ROUNDS", 4)
const DURATION = positiveInt("BENCH_DURATION", 5)
const CONNECTIONS = positiveInt("BENCH_CONNECTIONS", 50)
const WARMUP = 3
const LOG_LEVEL = "warning"
const OVER_BARE_US = 20
const UWS_BAR = 1.5

interface Variant {
  readonly name: string
  readonly script: string
  readonly env: () => Promise<Record<string, string>>
}

const OURS = "ours (dist/src/main.js)"
const BARE_NODE = "HttpApi on NodeHttpServer"
const BARE_UWS = "HttpApi on UwsHttpServer"

const all: ReadonlyArray<Variant> = [
  {
    name: OURS,
    script: "dist/src/main.js",
    env: async () => {
      ourServer()
      const dir = mkdtempSync(join(tmpdir(), "bench-http-"))
      tempDirs.push(dir)
      return { WS_PORT: String(await freePort()), DATA_DIR: dir, LOG_LEVEL }
    }
  },
  { name: BARE_NODE, script: "bench/servers/effect-http.ts", env: async () => ({ SERVER: "node" }) },
  { name: BARE_UWS, script: "bench/servers/effect-http.ts", env: async () => ({ SERVER: "uws" }) },
  { name: "node:http", script: "bench/servers/node-http.ts", env: async () => ({}) },
  { name: "uWS bare", script: "bench/servers/uws-bare.ts", env: async () => ({}) },
  { name: "Fastify 5", script: "bench/servers/fastify.ts", env: async () => ({}) }
]

const chosen = process.env.BENCH_VARIANTS?.split(",").map((name) => name.trim())
const variants = chosen === undefined ? all : all.filter((v) => chosen.includes(v.name))
if (variants.length === 0) {
  console.error(`BENCH_VARIANTS names none of: ${all.map((v) => v.name).join(", ")}`)
  process.exit(2)
}

const main = async () => {
  const began = performance.now()
  const loadBefore = loadAverage()
  const code = revision()
  const date = new Date().toISOString()
  const servers: Array<Server> = []
  const contentTypes: Array<string> = []
  try {
    // One at a time, so a slow boot (ours) does not compete with the others'.
    for (const variant of variants) {
      servers.push(await startServer(variant.name, variant.script, await freePort(), await variant.env()))
      const answer = await probe(`${servers.at(-1)!.base}/health/live`)
      if (answer?.body !== '{"status":"ok"}') throw new Error(`${variant.name} answered ${answer?.body}`)
      contentTypes.push(`${variant.name} "${answer.contentType}"`)
    }
    const cases: Array<Case> = servers.map((server) => ({
      name: server.name,
      server,
      path: "/health/live",
      connections: CONNECTIONS
    }))
    const done = await interleave(cases, { rounds: ROUNDS, duration: DURATION, warmup: WARMUP })
    for (const server of servers) {
      const printed = server.handle.output().trim()
      if (printed !== "") process.stderr.write(`${server.name} printed:\n${printed}\n`)
    }
    const find = (name: string) => done.find((d) => d.case.name === name)
    const [ours, bareNode, bareUws] = [find(OURS), find(BARE_NODE), find(BARE_UWS)]
    console.log(
      [
        "",
        `bench:http — GET /health/live, ${date}`,
        `machine: ${cpuModel()}, ${availableParallelism()} cores, Node ${process.version}; ` +
          `load average ${loadBefore} before, ${loadAverage()} after`,
        `versions: effect ${version("effect")}, @effect/platform ${version("@effect/platform")}, ` +
          `@effect/platform-node ${version("@effect/platform-node")}, uWebSockets.js ${version("uWebSockets.js")}, ` +
          `fastify ${version("fastify")}, autocannon ${version("autocannon")}`,
        `code at ${code}; ours: ${OUR_SERVER_LABEL}, embedded PGlite (idle), LOG_LEVEL=${LOG_LEVEL}; ` +
          "bare HttpApi: bench/servers/effect-http.ts (no middleware, no logger, no tracer)",
        `load: autocannon in its own process, ${CONNECTIONS} connections, pipelining 1; every server warmed ${WARMUP} s, ` +
          `then ${ROUNDS} rounds of ${DURATION} s each, servers taking turns (order rotating each round)`,
        `content-type: ${contentTypes.join(", ")}`,
        "server CPU = utime+stime from /proc/<pid>/stat over the measured runs; req/s = requests / measured wall time",
        "",
        table(done.map((d) => d.row)),
        "",
        ...roundLines(done),
        "",
        ...(ours && bareNode
          ? [overFloor("our stack over bare HttpApi (NodeHttpServer)", ours, bareNode, OVER_BARE_US)]
          : []),
        ...(bareNode && bareUws
          ? [cheaper("UwsHttpServer vs NodeHttpServer (same HttpApi app)", bareUws, bareNode, UWS_BAR, "adopt at")]
          : []),
        "",
        `total ${((performance.now() - began) / 1000).toFixed(0)} s`
      ].join("\n")
    )
  } finally {
    await stopServers(servers)
  }
}

runBench(main)
