/**
 * bench:http — what the full Effect HTTP stack costs per request, against a bare node:http server
 * and Fastify 5, on GET /health/live (no I/O behind it).
 *
 * One server runs at a time, each in its own process; autocannon runs in another process
 * (bench/load.ts). With 2 cores the server gets one and the load generator the other, and the
 * server's own CPU time (utime + stime from /proc/<pid>/stat) is reported per request beside the
 * wall-clock figures.
 *
 *   yarn bench:http                       # BENCH_DURATION=10 BENCH_CONNECTIONS=50 by default
 */
import { mkdtempSync } from "node:fs"
import { availableParallelism, tmpdir } from "node:os"
import { join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"
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

const DURATION = positiveInt("BENCH_DURATION", 10)
const CONNECTIONS = positiveInt("BENCH_CONNECTIONS", 50)
const WARMUP = 3
const LOG_LEVEL = "warning"
interface Target {
  readonly name: string
  readonly script: string
  readonly env: (port: number) => Promise<Record<string, string>>
}

const targets: ReadonlyArray<Target> = [
  {
    name: "ours (Effect)",
    script: "src/main.ts",
    env: async (port) => {
      const dir = mkdtempSync(join(tmpdir(), "bench-http-"))
      tempDirs.push(dir)
      return { PORT: String(port), WS_PORT: String(await freePort()), HOST: "127.0.0.1", DATA_DIR: dir, LOG_LEVEL }
    }
  },
  { name: "node:http", script: "bench/servers/node-http.ts", env: async (port) => ({ PORT: String(port) }) },
  { name: "Fastify 5", script: "bench/servers/fastify.ts", env: async (port) => ({ PORT: String(port) }) }
]

const bench = async (target: Target): Promise<Row> => {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}/health/live`
  const began = performance.now()
  const server = startNode([target.script], await target.env(port))
  try {
    let answer: Awaited<ReturnType<typeof probe>>
    while (true) {
      if (!isRunning(server.child)) throw new Error(`${target.name} exited during start:\n${server.output()}`)
      if (performance.now() - began > 30_000) throw new Error(`${target.name} not live after 30 s:\n${server.output()}`)
      answer = await probe(url)
      if (answer?.status === 200) break
      await sleep(100)
    }
    const bootMs = performance.now() - began
    if (answer.body !== '{"status":"ok"}') throw new Error(`${target.name} answered ${answer.body}`)
    process.stderr.write(`${target.name}: live after ${(bootMs / 1000).toFixed(1)} s; warm-up ${WARMUP} s, `)
    await runLoad(url, server.child.pid!, WARMUP, CONNECTIONS)
    process.stderr.write(`measure ${DURATION} s\n`)
    const measured = await runLoad(url, server.child.pid!, DURATION, CONNECTIONS)
    if (!isRunning(server.child)) throw new Error(`${target.name} exited under load:\n${server.output()}`)
    const printed = server.output().trim()
    if (printed !== "") process.stderr.write(`${target.name} printed:\n${printed}\n`)
    return { name: target.name, contentType: answer.contentType, ...measured }
  } finally {
    await stop(server)
  }
}

const main = async () => {
  const began = performance.now()
  const loadBefore = loadAverage()
  const code = revision()
  const date = new Date().toISOString()
  const rows: Array<Row> = []
  for (const target of targets) rows.push(await bench(target))
  const [ours, bare, fastify] = rows as [Row, Row, Row]
  console.log(
    [
      "",
      `bench:http — GET /health/live, ${date}`,
      `machine: ${cpuModel()}, ${availableParallelism()} cores, Node ${process.version}; ` +
        `load average ${loadBefore} before, ${loadAverage()} after`,
      `versions: effect ${version("effect")}, @effect/platform ${version("@effect/platform")}, ` +
        `@effect/platform-node ${version("@effect/platform-node")}, fastify ${version("fastify")}, ` +
        `autocannon ${version("autocannon")}`,
      `load: autocannon in its own process, ${CONNECTIONS} connections, pipelining 1, ` +
        `${WARMUP} s warm-up then ${DURATION} s measured; one server at a time`,
      `ours: node --import tsx src/main.ts at ${code}, embedded PGlite (idle), LOG_LEVEL=${LOG_LEVEL}`,
      `content-type: ${rows.map((r) => `${r.name} "${r.contentType}"`).join(", ")}`,
      "server CPU = utime+stime from /proc/<pid>/stat over the measured run; 100% = one core",
      "",
      table(rows),
      "",
      ratio(ours, bare),
      ratio(ours, fastify),
      "",
      `total ${((performance.now() - began) / 1000).toFixed(0)} s`
    ].join("\n")
  )
}

runBench(main)
