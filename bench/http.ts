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
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { get } from "node:http"
import { createServer } from "node:net"
import { availableParallelism, tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { setTimeout as sleep } from "node:timers/promises"
import { fileURLToPath } from "node:url"
import type { LoadReport, LoadResult } from "./load.ts"

const root = fileURLToPath(new URL("../", import.meta.url))

const positiveInt = (name: string, fallback: number) => {
  const raw = process.env[name]
  if (raw === undefined || raw === "") return fallback
  const value = Number(raw)
  if (Number.isInteger(value) && value > 0) return value
  console.error(`${name} must be a positive integer, got "${raw}"`)
  process.exit(2)
}

const DURATION = positiveInt("BENCH_DURATION", 10)
const CONNECTIONS = positiveInt("BENCH_CONNECTIONS", 50)
const WARMUP = 3
const LOG_LEVEL = "warning"
const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim())

// Everything started here, so it can be killed on any exit path.
const children = new Set<ChildProcess>()
const tempDirs: Array<string> = []

const killAll = () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
}
process.on("exit", killAll)
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    console.error(`\n${signal}: stopping`)
    process.exit(signal === "SIGINT" ? 130 : 143)
  })
}

const startNode = (args: Array<string>, env: Record<string, string>) => {
  const child = spawn(process.execPath, ["--import", "tsx", ...args], {
    cwd: root,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  children.add(child)
  child.once("exit", () => children.delete(child))
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  let output = ""
  const keep = (chunk: Buffer) => {
    output = (output + chunk).slice(-20_000)
  }
  child.stdout.on("data", keep)
  child.stderr.on("data", keep)
  return { child, exited, output: () => output }
}

const isRunning = (child: ChildProcess) => child.exitCode === null && child.signalCode === null

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0))
    })
  })

/** One request on its own connection, so no keep-alive socket lingers into the measurement. */
const probe = (url: string) =>
  new Promise<{ status: number; contentType: string; body: string } | undefined>((resolve) => {
    const request = get(url, { agent: false }, (response) => {
      let body = ""
      response.on("data", (chunk) => {
        body += chunk
      })
      response.on("end", () =>
        resolve({ status: response.statusCode ?? 0, contentType: response.headers["content-type"] ?? "", body })
      )
    })
    request.on("error", () => resolve(undefined))
    request.setTimeout(1000, () => request.destroy())
  })

/** CPU time of a live process in microseconds: user (utime) and kernel (stime). */
const cpuUs = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  // fields[0] is field 3 (state), so utime (14) and stime (15) are at 11 and 12.
  return { user: (Number(fields[11]) * 1e6) / CLK_TCK, sys: (Number(fields[12]) * 1e6) / CLK_TCK }
}

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

interface Row {
  readonly name: string
  readonly result: LoadResult
  readonly serverCpuUs: number
  readonly serverSysUs: number
  readonly loadCpuUs: number
  readonly wallUs: number
  readonly contentType: string
}

/** Runs bench/load.ts against the server; measures the server's CPU between the load's start and done lines. */
const runLoad = async (url: string, serverPid: number, seconds: number) => {
  const load = startNode(["bench/load.ts", url, String(CONNECTIONS), String(seconds)], {})
  let start: { cpu: ReturnType<typeof cpuUs>; at: number } | undefined
  let done: { cpu: ReturnType<typeof cpuUs>; at: number; report: LoadReport } | undefined
  for await (const line of createInterface({ input: load.child.stdout })) {
    if (!line.startsWith("{")) continue
    const message = JSON.parse(line) as { event: "start" } | LoadReport
    const now = { cpu: cpuUs(serverPid), at: performance.now() }
    if (message.event === "start") start = now
    else done = { ...now, report: message }
  }
  await load.exited
  if (start === undefined || done === undefined) throw new Error(`load generator failed:\n${load.output()}`)
  return {
    result: done.report.result,
    serverCpuUs: done.cpu.user + done.cpu.sys - start.cpu.user - start.cpu.sys,
    serverSysUs: done.cpu.sys - start.cpu.sys,
    loadCpuUs: done.report.cpuUs,
    wallUs: (done.at - start.at) * 1000
  }
}

const stop = async (server: ReturnType<typeof startNode>) => {
  if (!isRunning(server.child)) return
  server.child.kill("SIGTERM")
  await Promise.race([server.exited, sleep(8000)])
  if (isRunning(server.child)) server.child.kill("SIGKILL")
  await server.exited
}

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
    await runLoad(url, server.child.pid!, WARMUP)
    process.stderr.write(`measure ${DURATION} s\n`)
    const measured = await runLoad(url, server.child.pid!, DURATION)
    if (!isRunning(server.child)) throw new Error(`${target.name} exited under load:\n${server.output()}`)
    const printed = server.output().trim()
    if (printed !== "") process.stderr.write(`${target.name} printed:\n${printed}\n`)
    return { name: target.name, contentType: answer.contentType, ...measured }
  } finally {
    await stop(server)
  }
}

const version = (pkg: string) =>
  (JSON.parse(readFileSync(join(root, "node_modules", pkg, "package.json"), "utf8")) as { version: string }).version

const cpuModel = () =>
  /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? "unknown CPU"

const num = (n: number, digits = 0) =>
  n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })

/** autocannon records whole milliseconds, so 0 means under 1 ms. */
const ms = (n: number) => (n === 0 ? "<1" : num(n))

/** The commit measured, and whether tracked files differed from it. */
const revision = () => {
  try {
    const git = (...args: Array<string>) => execFileSync("git", args, { cwd: root, encoding: "utf8" }).trim()
    const dirty = git("status", "--porcelain", "--untracked-files=no") !== ""
    return `${git("rev-parse", "--short", "HEAD")}${dirty ? " with uncommitted changes" : ""}`
  } catch {
    return "unknown (no git)"
  }
}

const loadAverage = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")

const table = (rows: ReadonlyArray<Row>) => {
  const header = [
    "server",
    "req/s (avg)",
    "p50 ms",
    "p99 ms",
    "errors / non-2xx",
    "server CPU µs/req",
    "of which kernel",
    "server CPU %",
    "load-gen CPU %",
    "bytes/resp"
  ]
  const lines = rows.map(({ name, result, serverCpuUs, serverSysUs, loadCpuUs, wallUs }) => {
    const total = result.requests.total
    return [
      name,
      num(result.requests.average),
      ms(result.latency.p50),
      ms(result.latency.p99),
      `${num(result.errors + result.timeouts)} / ${num(result.non2xx)}`,
      num(serverCpuUs / total, 1),
      num(serverSysUs / total, 1),
      num((100 * serverCpuUs) / wallUs),
      num((100 * loadCpuUs) / wallUs),
      num(result.throughput.total / total)
    ]
  })
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((line) => line[i]!.length)))
  const format = (cells: Array<string>) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |`
  const rule = `|${widths.map((w, i) => `${"-".repeat(w + 1)}${i === 0 ? "-" : ":"}`).join("|")}|`
  return [format(header), rule, ...lines.map(format)].join("\n")
}

const ratio = (ours: Row, other: Row) => {
  const rps = ours.result.requests.average / other.result.requests.average
  const p99 =
    other.result.latency.p99 === 0
      ? "n/a (<1 ms)"
      : `${(ours.result.latency.p99 / other.result.latency.p99).toFixed(1)}×`
  const perRequest = (row: Row) => row.serverCpuUs / row.result.requests.total
  return (
    `ours vs ${other.name}: req/s ${rps.toFixed(2)}×, p99 ${p99}, ` +
    `server CPU ${(perRequest(ours) / perRequest(other)).toFixed(1)}× (+${num(perRequest(ours) - perRequest(other), 1)} µs/req)`
  )
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

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error)
    process.exit(1)
  }
)
