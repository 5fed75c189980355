/**
 * Interleaved rounds, shared by bench:http, bench:auth and bench:check: servers started once each
 * (boot is not measured), every case warmed once, then the cases take turns round after round, the
 * order rotating each round, so a busy moment on a shared machine lands on all of them alike. Only
 * one case is under load at a time; the load generator runs in its own process (bench/load.ts).
 * Server CPU is utime + stime from /proc/<pid>/stat between the load's start and done lines.
 */
import { setTimeout as sleep } from "node:timers/promises"
import { isRunning, num, probe, type Row, runLoad, startNode, stop } from "./harness.ts"
import type { LoadRequest, LoadResult } from "./load.ts"

export type Measured = Awaited<ReturnType<typeof runLoad>>

export interface Server {
  readonly name: string
  readonly base: string
  readonly pid: number
  readonly handle: ReturnType<typeof startNode>
}

/** Starts `script` on `port` and waits until `readyPath` answers with a status below 500. */
export const startServer = async (
  name: string,
  script: string,
  port: number,
  env: Record<string, string>,
  readyPath = "/health/live"
): Promise<Server> => {
  const handle = startNode([script], { PORT: String(port), HOST: "127.0.0.1", ...env })
  const base = `http://127.0.0.1:${port}`
  const began = performance.now()
  while (((await probe(`${base}${readyPath}`))?.status ?? 500) >= 500) {
    if (!isRunning(handle.child)) throw new Error(`${name} exited during start:\n${handle.output()}`)
    if (performance.now() - began > 60_000) throw new Error(`${name} not up after 60 s:\n${handle.output()}`)
    await sleep(100)
  }
  process.stderr.write(`${name}: up after ${num((performance.now() - began) / 1000, 1)} s\n`)
  return { name, base, pid: handle.child.pid!, handle }
}

export const stopServers = (servers: ReadonlyArray<Server>) => Promise.all(servers.map((s) => stop(s.handle)))

/** One thing measured: by default autocannon on `server.base + path`; `run` replaces it (e.g. a live socket). */
export interface Case {
  readonly name: string
  readonly server: Server
  readonly path?: string
  readonly connections?: number
  readonly request?: LoadRequest
  readonly run?: (seconds: number) => Promise<Measured>
  /** What one request counts as (a batch of 100 checks: 100); 1 by default. */
  readonly unitsPerRequest?: number
}

export interface Rounds {
  readonly rounds: number
  readonly duration: number
  readonly warmup: number
}

export interface Done {
  readonly case: Case
  readonly rounds: ReadonlyArray<Measured>
  readonly row: Row
}

const measureOnce = async (c: Case, seconds: number) => {
  const measured =
    c.run === undefined
      ? await runLoad(`${c.server.base}${c.path ?? "/"}`, c.server.pid, seconds, c.connections ?? 50, c.request ?? {})
      : await c.run(seconds)
  if (!isRunning(c.server.handle.child)) throw new Error(`${c.name}: exited under load:\n${c.server.handle.output()}`)
  const { requests } = measured.result
  if (requests.total === 0 || measured.result.non2xx > requests.total / 100) {
    throw new Error(`${c.name}: ${measured.result.non2xx} of ${requests.total} answers were not 2xx`)
  }
  return measured
}

/** Warms every case once, then runs `rounds` rounds of every case, rotating the order each round. */
export const interleave = async (cases: ReadonlyArray<Case>, plan: Rounds): Promise<ReadonlyArray<Done>> => {
  for (const c of cases) {
    process.stderr.write(`${c.name}: warm-up ${plan.warmup} s\n`)
    await measureOnce(c, plan.warmup)
  }
  const rounds = cases.map(() => [] as Array<Measured>)
  for (let round = 0; round < plan.rounds; round++) {
    process.stderr.write(`round ${round + 1}/${plan.rounds}\n`)
    for (let k = 0; k < cases.length; k++) {
      const i = (k + round) % cases.length
      rounds[i]!.push(await measureOnce(cases[i]!, plan.duration))
    }
  }
  return cases.map((c, i) => ({ case: c, rounds: rounds[i]!, row: aggregate(c.name, rounds[i]!) }))
}

export const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** All rounds of one case as one row: sums for counts and CPU, medians for latency percentiles. */
export const aggregate = (name: string, rounds: ReadonlyArray<Measured>, contentType = ""): Row => {
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
    name,
    contentType,
    result,
    serverCpuUs: sum((m) => m.serverCpuUs),
    serverSysUs: sum((m) => m.serverSysUs),
    loadCpuUs: sum((m) => m.loadCpuUs),
    wallUs
  }
}

export const cpuPerRequest = (m: { serverCpuUs: number; result: LoadResult }) => m.serverCpuUs / m.result.requests.total

/** Server CPU µs per request of every round, one line per case. */
export const roundLines = (done: ReadonlyArray<Done>) => {
  const width = Math.max(...done.map((d) => d.case.name.length))
  return [
    "server CPU µs/request in rounds 1, 2, …:",
    ...done.map(
      (d) => `  ${d.case.name.padEnd(width)} ${d.rounds.map((m) => num(cpuPerRequest(m), 1).padStart(8)).join(" ")}`
    )
  ]
}

const verdict = (met: boolean) => (met ? "met" : "NOT met")

/**
 * "<ours> over <floor>: +N µs/request (target ≤ T): met", from the summed rows, with the range of the
 * per-round differences (each round's pair ran minutes apart at most, under the same conditions).
 */
export const overFloor = (label: string, ours: Done, floor: Done, target: number) => {
  const plus = cpuPerRequest(ours.row) - cpuPerRequest(floor.row)
  const perRound = ours.rounds.map((m, i) => cpuPerRequest(m) - cpuPerRequest(floor.rounds[i]!))
  const signed = (us: number) => `${us < 0 ? "−" : "+"}${num(Math.abs(us), 1)}`
  return (
    `${label}: ${signed(plus)} µs/request (target ≤ +${target}): ${verdict(plus <= target)}` +
    ` — ${num(cpuPerRequest(ours.row), 1)} vs ${num(cpuPerRequest(floor.row), 1)} µs; ` +
    `per round ${signed(Math.min(...perRound))} … ${signed(Math.max(...perRound))}`
  )
}

/** "<label>: N× cheaper per request (target ≥ B×): met", the CPU per request of `other` over `ours`. */
export const cheaper = (label: string, ours: Done, other: Done, bar: number, barWord = "target") => {
  const times = cpuPerRequest(other.row) / cpuPerRequest(ours.row)
  const perRound = ours.rounds.map((m, i) => cpuPerRequest(other.rounds[i]!) / cpuPerRequest(m))
  return (
    `${label}: ${times.toFixed(2)}× cheaper per request (${barWord} ≥ ${bar}×): ${verdict(times >= bar)}` +
    ` — ${num(cpuPerRequest(other.row), 1)} vs ${num(cpuPerRequest(ours.row), 1)} µs; ` +
    `per round ${Math.min(...perRound).toFixed(2)}× … ${Math.max(...perRound).toFixed(2)}×`
  )
}
