/**
 * bench:check's live-socket case: `check` messages over open live sessions (docs/live-protocol.md),
 * in server CPU µs per check. The sessions are opened once by bench/liveCheckClient.ts, a load
 * generator in its own process; each round asks it to run for a while, and the server's CPU (utime
 * + stime from /proc) is read when it says it starts and when it reports, as bench/load.ts does for
 * HTTP. The result is shaped like an autocannon result, so it fits bench/rounds.ts and its table.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { createInterface, type Interface } from "node:readline"
import type { CheckInput } from "../src/domain/Decision.ts"
import { cpuUs, isRunning, root } from "./harness.ts"
import type { LoadResult } from "./load.ts"
import type { Case, Measured, Server } from "./rounds.ts"

interface Done {
  readonly event: "done"
  readonly answered: number
  readonly sent: number
  readonly unanswered: number
  readonly errors: Record<string, number>
  readonly seconds: number
  readonly latency: { p50: number; p99: number; average: number }
  readonly cpuUs: number
}

type Line = { event: "open"; sessions: number; retries: number } | { event: "start" } | { event: "closed" } | Done

const clients = new Set<ChildProcess>()
process.on("exit", () => {
  for (const child of clients) if (isRunning(child)) child.kill("SIGKILL")
})

export interface LiveOptions {
  readonly server: Server
  readonly wsUrl: string
  readonly token: string
  readonly organizationId: string
  readonly sockets: number
  readonly rate: number
  readonly checks: ReadonlyArray<CheckInput>
}

/** Opens the sessions; resolves with the case to measure, the sessions' idle cost, and how to stop. */
export const openLive = async (name: string, options: LiveOptions) => {
  const checks = options.checks.map((input) => ({
    permission: input.permission,
    ...(input.resource === undefined ? {} : { resource: { type: input.resource.type, id: input.resource.id } })
  }))
  const child = spawn(process.execPath, ["--import", "tsx", "bench/liveCheckClient.ts"], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "/tmp",
      LIVE_BASE: options.server.base,
      LIVE_WS: options.wsUrl,
      LIVE_TOKEN: options.token,
      LIVE_ORG: options.organizationId,
      LIVE_SOCKETS: String(options.sockets),
      LIVE_RATE: String(options.rate),
      LIVE_CHECKS: JSON.stringify(checks)
    },
    stdio: ["pipe", "pipe", "pipe"]
  })
  clients.add(child)
  let errorOutput = ""
  child.stderr.on("data", (chunk: Buffer) => {
    errorOutput = (errorOutput + chunk).slice(-4000)
  })
  const lines: Interface = createInterface({ input: child.stdout })
  const iterator = lines[Symbol.asyncIterator]()
  let closed = 0
  const nextLine = async (): Promise<Line> => {
    while (true) {
      const { value, done } = await iterator.next()
      if (done) throw new Error(`the live client exited:\n${errorOutput}`)
      if (!value.startsWith("{")) continue
      const line = JSON.parse(value) as Line
      if (line.event === "closed") closed++
      else return line
    }
  }
  const opened = await nextLine()
  if (opened.event !== "open") throw new Error(`the live client said ${JSON.stringify(opened)}`)

  const idleSeconds = 2
  const idleBefore = cpuUs(options.server.pid)
  await new Promise((resolve) => setTimeout(resolve, idleSeconds * 1000))
  const idleAfter = cpuUs(options.server.pid)
  const idleCpuPercent = (idleAfter.user + idleAfter.sys - idleBefore.user - idleBefore.sys) / (idleSeconds * 1e4)

  const run = async (seconds: number): Promise<Measured> => {
    child.stdin.write(`${JSON.stringify({ cmd: "run", seconds })}\n`)
    const start = await nextLine()
    if (start.event !== "start") throw new Error(`the live client said ${JSON.stringify(start)}`)
    const before = { cpu: cpuUs(options.server.pid), at: performance.now() }
    const done = await nextLine()
    const after = { cpu: cpuUs(options.server.pid), at: performance.now() }
    if (done.event !== "done") throw new Error(`the live client said ${JSON.stringify(done)}`)
    if (closed > 0) throw new Error(`${closed} live sessions closed during the run`)
    const errors = Object.values(done.errors).reduce((a, b) => a + b, 0)
    if (errors > 0) process.stderr.write(`${name}: error frames ${JSON.stringify(done.errors)}\n`)
    const result: LoadResult = {
      requests: { average: done.answered / done.seconds, total: done.answered, p50: 0, p99: 0 },
      latency: { average: done.latency.average, total: 0, p50: done.latency.p50, p99: done.latency.p99 },
      throughput: { average: 0, total: 0, p50: 0, p99: 0 },
      errors,
      timeouts: done.unanswered,
      non2xx: 0,
      statusCodeStats: {},
      duration: done.seconds
    }
    return {
      result,
      serverCpuUs: after.cpu.user + after.cpu.sys - before.cpu.user - before.cpu.sys,
      serverSysUs: after.cpu.sys - before.cpu.sys,
      loadCpuUs: done.cpuUs,
      wallUs: (after.at - before.at) * 1000
    }
  }

  const stop = async () => {
    if (!isRunning(child)) return
    child.stdin.write(`${JSON.stringify({ cmd: "stop" })}\n`)
    await Promise.race([new Promise((resolve) => child.once("exit", resolve)), new Promise((r) => setTimeout(r, 3000))])
    if (isRunning(child)) child.kill("SIGKILL")
  }

  const liveCase: Case = { name, server: options.server, run }
  return { liveCase, sessions: opened.sessions, retries: opened.retries, idleCpuPercent, stop }
}
