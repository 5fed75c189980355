/**
 * bench:http-uws — does serving @effect/platform on uWebSockets.js (src/layers/http/UwsHttpServer.ts)
 * make a request cheaper than NodeHttpServer? The same HttpApi app (GET /health/live, no I/O;
 * bench/servers/effect-http.ts) runs on both, beside a bare node:http and a bare uWS server as floors.
 *
 * Every server starts once, in its own process, and is warmed up; then the variants take turns, round
 * after round (the order rotating each round), so a busy moment on this shared machine lands on all of
 * them alike. autocannon runs in another process (bench/load.ts) and only one server is under load at a
 * time. Server CPU (utime + stime from /proc/<pid>/stat) per request is the figure that decides.
 *
 *   yarn bench:http-uws        # BENCH_ROUNDS=4 BENCH_DURATION=5 BENCH_CONNECTIONS=50: about 2 minutes
 */
import { availableParallelism } from "node:os"
import { setTimeout as sleep } from "node:timers/promises"
import {
  cpuModel,
  freePort,
  isRunning,
  loadAverage,
  num,
  positiveInt,
  probe,
  type Row,
  revision,
  runBench,
  runLoad,
  startNode,
  stop,
  table,
  version
} from "./harness.ts"
import type { LoadResult } from "./load.ts"

const ROUNDS = positiveInt("BENCH_ROUNDS", 4)
const DURATION = positiveInt("BENCH_DURATION", 5)
const CONNECTIONS = positiveInt("BENCH_CONNECTIONS", 50)
const WARMUP = 3
const BAR = 1.5

interface Variant {
  readonly name: string
  readonly script: string
  readonly env: Record<string, string>
}

const variants: ReadonlyArray<Variant> = [
  { name: "node:http", script: "bench/servers/node-http.ts", env: {} },
  { name: "NodeHttpServer + HttpApi", script: "bench/servers/effect-http.ts", env: { SERVER: "node" } },
  { name: "UwsHttpServer + HttpApi", script: "bench/servers/effect-http.ts", env: { SERVER: "uws" } },
  { name: "uWS bare", script: "bench/servers/uws-bare.ts", env: {} }
]

type Measured = Awaited<ReturnType<typeof runLoad>>

interface Running {
  readonly variant: Variant
  readonly server: ReturnType<typeof startNode>
  readonly url: string
  contentType: string
  readonly rounds: Array<Measured>
}

const start = async (variant: Variant): Promise<Running> => {
  const port = await freePort()
  const env = { PORT: String(port), HOST: "127.0.0.1", ...variant.env }
  return {
    variant,
    server: startNode([variant.script], env),
    url: `http://127.0.0.1:${port}/health/live`,
    contentType: "",
    rounds: []
  }
}

const awaitLive = async (running: Running) => {
  const began = performance.now()
  const { name } = running.variant
  while (true) {
    if (!isRunning(running.server.child)) throw new Error(`${name} exited during start:\n${running.server.output()}`)
    if (performance.now() - began > 30_000) throw new Error(`${name} not live after 30 s:\n${running.server.output()}`)
    const answer = await probe(running.url)
    if (answer?.status === 200) {
      if (answer.body !== '{"status":"ok"}') throw new Error(`${name} answered ${answer.body}`)
      running.contentType = answer.contentType
      return
    }
    await sleep(100)
  }
}

const measure = async (running: Running, seconds: number) => {
  const measured = await runLoad(running.url, running.server.child.pid!, seconds, CONNECTIONS)
  if (!isRunning(running.server.child)) {
    throw new Error(`${running.variant.name} exited under load:\n${running.server.output()}`)
  }
  return measured
}

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** All rounds of one variant as one row: sums for counts and CPU, medians for latency percentiles. */
const aggregate = ({ variant, rounds, contentType }: Running): Row => {
  const sum = (f: (m: Measured) => number) => rounds.reduce((total, m) => total + f(m), 0)
  const results = rounds.map((m) => m.result)
  const total = sum((m) => m.result.requests.total)
  const wallUs = sum((m) => m.wallUs)
  const result: LoadResult = {
    requests: { average: total / (wallUs / 1e6), total, p50: 0, p99: 0 },
    latency: {
      average: median(results.map((r) => r.latency.average)),
      total: 0,
      p50: median(results.map((r) => r.latency.p50)),
      p99: median(results.map((r) => r.latency.p99))
    },
    throughput: { average: 0, total: sum((m) => m.result.throughput.total), p50: 0, p99: 0 },
    errors: sum((m) => m.result.errors),
    timeouts: sum((m) => m.result.timeouts),
    non2xx: sum((m) => m.result.non2xx),
    statusCodeStats: {},
    duration: wallUs / 1e6
  }
  return {
    name: variant.name,
    contentType,
    result,
    serverCpuUs: sum((m) => m.serverCpuUs),
    serverSysUs: sum((m) => m.serverSysUs),
    loadCpuUs: sum((m) => m.loadCpuUs),
    wallUs
  }
}

const perRequest = (m: Measured) => m.serverCpuUs / m.result.requests.total
const rowPerRequest = (row: Row) => row.serverCpuUs / row.result.requests.total

const main = async () => {
  const began = performance.now()
  const loadBefore = loadAverage()
  const date = new Date().toISOString()
  const running = await Promise.all(variants.map(start))
  try {
    // Started together (boot is not measured); live and warmed one at a time.
    for (const server of running) {
      await awaitLive(server)
      process.stderr.write(`${server.variant.name}: live; warm-up ${WARMUP} s\n`)
      await measure(server, WARMUP)
    }
    for (let round = 0; round < ROUNDS; round++) {
      const order = running.map((_, i) => running[(i + round) % running.length]!)
      process.stderr.write(`round ${round + 1}/${ROUNDS}: ${order.map((r) => r.variant.name).join(", ")}\n`)
      for (const server of order) server.rounds.push(await measure(server, DURATION))
    }
    for (const server of running) {
      const printed = server.server.output().trim()
      if (printed !== "") process.stderr.write(`${server.variant.name} printed:\n${printed}\n`)
    }
  } finally {
    await Promise.all(running.map((r) => stop(r.server)))
  }
  const rows = running.map(aggregate)
  const [bare, node, uws, uwsBare] = rows as [Row, Row, Row, Row]
  const cheaper = rowPerRequest(node) / rowPerRequest(uws)
  const perRound = running.map(
    (r) => `  ${r.variant.name.padEnd(26)} ${r.rounds.map((m) => num(perRequest(m), 1).padStart(7)).join(" ")}`
  )
  console.log(
    [
      "",
      `bench:http-uws — GET /health/live, ${date}`,
      `machine: ${cpuModel()}, ${availableParallelism()} cores, Node ${process.version}; ` +
        `load average ${loadBefore} before, ${loadAverage()} after`,
      `versions: effect ${version("effect")}, @effect/platform ${version("@effect/platform")}, ` +
        `@effect/platform-node ${version("@effect/platform-node")}, uWebSockets.js ${version("uWebSockets.js")}, ` +
        `autocannon ${version("autocannon")}; code at ${revision()}`,
      `load: autocannon in its own process, ${CONNECTIONS} connections, pipelining 1; every server warmed ${WARMUP} s, ` +
        `then ${ROUNDS} rounds of ${DURATION} s each, variants taking turns (order rotating each round)`,
      `content-type: ${rows.map((r) => `${r.name} "${r.contentType}"`).join(", ")}`,
      "server CPU = utime+stime from /proc/<pid>/stat over the measured runs; req/s = requests / measured wall time",
      "",
      table(rows),
      "",
      "server CPU µs/req in each round:",
      ...perRound,
      "",
      `HttpApi on uWS vs on NodeHttpServer: ${cheaper.toFixed(2)}× cheaper per request ` +
        `(${num(rowPerRequest(node), 1)} → ${num(rowPerRequest(uws), 1)} µs), ` +
        `req/s ${(uws.result.requests.average / node.result.requests.average).toFixed(2)}×; ` +
        `bar ${BAR}×: ${cheaper >= BAR ? "met" : "not met"}`,
      `floors: node:http ${num(rowPerRequest(bare), 1)} µs/req, uWS bare ${num(rowPerRequest(uwsBare), 1)} µs/req; ` +
        `Effect's share on Node ${num(rowPerRequest(node) - rowPerRequest(bare), 1)} µs, ` +
        `on uWS ${num(rowPerRequest(uws) - rowPerRequest(uwsBare), 1)} µs`,
      "",
      `total ${((performance.now() - began) / 1000).toFixed(0)} s`
    ].join("\n")
  )
}

runBench(main)
