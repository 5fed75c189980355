/**
 * What every bench script shares: child processes killed on any exit, free ports, readiness probes,
 * a server's CPU time from /proc, the load generator in its own process (bench/load.ts), and the
 * table and ratio printing.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { readFileSync, rmSync } from "node:fs"
import { get } from "node:http"
import { createServer } from "node:net"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { setTimeout as sleep } from "node:timers/promises"
import { fileURLToPath } from "node:url"
import type { LoadReport, LoadRequest, LoadResult } from "./load.ts"

export const root = fileURLToPath(new URL("../", import.meta.url))

/**
 * Our server as production runs it (the Dockerfile's `dist/src/main.js`), compiled by `yarn build`
 * once per benchmark run; `yarn start`'s tsx adds a loader's cost (esbuild's keep-names wrappers on
 * every closure made per call) that a deployment does not pay.
 */
let built = false
export const ourServer = () => {
  if (!built) {
    execFileSync("yarn", ["build"], { cwd: root, stdio: "ignore" })
    built = true
  }
  return "dist/src/main.js"
}
export const OUR_SERVER_LABEL = "node dist/src/main.js (yarn build)"

export const positiveInt = (name: string, fallback: number) => {
  const raw = process.env[name]
  if (raw === undefined || raw === "") return fallback
  const value = Number(raw)
  if (Number.isInteger(value) && value > 0) return value
  console.error(`${name} must be a positive integer, got "${raw}"`)
  process.exit(2)
}

export const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim())

// Everything started here, so it can be killed on any exit path.
const children = new Set<ChildProcess>()
export const tempDirs: Array<string> = []

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

export const startNode = (args: Array<string>, env: Record<string, string>) => {
  // BENCH_CPU_PROF=<dir>: each server writes a V8 CPU profile there when it exits (open it in Chrome DevTools).
  // While profiled, the pinned uWebSockets.js drops more fresh sockets right after their upgrade
  // (1006; see "The uWebSockets.js drop" in BENCHMARKS.md): the bench clients reopen and count them.
  const profile = process.env.BENCH_CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []
  const child = spawn(process.execPath, [...profile, "--import", "tsx", ...args], {
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

export const isRunning = (child: ChildProcess) => child.exitCode === null && child.signalCode === null

export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0))
    })
  })

/** One request on its own connection, so no keep-alive socket lingers into the measurement. */
export const probe = (url: string) =>
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
export const cpuUs = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  // fields[0] is field 3 (state), so utime (14) and stime (15) are at 11 and 12.
  return { user: (Number(fields[11]) * 1e6) / CLK_TCK, sys: (Number(fields[12]) * 1e6) / CLK_TCK }
}

export interface Row {
  readonly name: string
  readonly result: LoadResult
  readonly serverCpuUs: number
  readonly serverSysUs: number
  readonly loadCpuUs: number
  readonly wallUs: number
  readonly contentType: string
}

/** Runs bench/load.ts against the server; measures the server's CPU between the load's start and done lines. */
export const runLoad = async (
  url: string,
  serverPid: number,
  seconds: number,
  connections: number,
  request: LoadRequest = {}
) => {
  const load = startNode(["bench/load.ts", url, String(connections), String(seconds), JSON.stringify(request)], {})
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

export const stop = async (server: ReturnType<typeof startNode>) => {
  if (!isRunning(server.child)) return
  server.child.kill("SIGTERM")
  await Promise.race([server.exited, sleep(8000)])
  if (isRunning(server.child)) server.child.kill("SIGKILL")
  await server.exited
}

export const version = (pkg: string) =>
  (JSON.parse(readFileSync(join(root, "node_modules", pkg, "package.json"), "utf8")) as { version: string }).version

export const cpuModel = () =>
  /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? "unknown CPU"

export const num = (n: number, digits = 0) =>
  n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })

/** autocannon records whole milliseconds, so 0 means under 1 ms. */
export const ms = (n: number) => (n === 0 ? "<1" : num(n))

/** The commit measured, and whether tracked files differed from it. */
export const revision = () => {
  try {
    const git = (...args: Array<string>) => execFileSync("git", args, { cwd: root, encoding: "utf8" }).trim()
    const dirty = git("status", "--porcelain", "--untracked-files=no") !== ""
    return `${git("rev-parse", "--short", "HEAD")}${dirty ? " with uncommitted changes" : ""}`
  } catch {
    return "unknown (no git)"
  }
}

export const loadAverage = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")

export const table = (rows: ReadonlyArray<Row>) => {
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

export const ratio = (ours: Row, other: Row) => {
  const rps = ours.result.requests.average / other.result.requests.average
  const p99 =
    other.result.latency.p99 === 0
      ? "n/a (<1 ms)"
      : `${(ours.result.latency.p99 / other.result.latency.p99).toFixed(1)}×`
  const perRequest = (row: Row) => row.serverCpuUs / row.result.requests.total
  return (
    `ours vs ${other.name}: req/s ${rps.toFixed(2)}×, p99 ${p99}, ` +
    `server CPU ${(perRequest(ours) / perRequest(other)).toFixed(1)}× (${perRequest(ours) >= perRequest(other) ? "+" : "−"}${num(Math.abs(perRequest(ours) - perRequest(other)), 1)} µs/req)`
  )
}

/** Runs a bench's main and exits: 0 on success, 1 with the error otherwise (children are killed on exit). */
export const runBench = (main: () => Promise<void>) =>
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error instanceof Error ? (error.stack ?? error.message) : error)
      process.exit(1)
    }
  )
