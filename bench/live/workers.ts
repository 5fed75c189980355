/**
 * The bench scripts' side of the client processes (bench/live/clients.ts): starts them with an IPC
 * channel, one loopback source address each (127.0.0.2, 127.0.0.3, …), sends commands and gathers
 * the answers; and the figures shared by bench:push and bench:sessions (percentiles, RSS, CPU of
 * processes and of the whole machine).
 */
import { type ChildProcess, spawn } from "node:child_process"
import { readdirSync, readFileSync } from "node:fs"
import { CLK_TCK, root } from "../harness.ts"
import type { CollectReport, Command, OpenReport, StatusReport } from "./clients.ts"

export { now } from "./clients.ts"

const started = new Set<ChildProcess>()
process.on("exit", () => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
})

export interface Worker {
  readonly pid: number
  readonly address: string
  readonly send: <A>(command: Command) => Promise<A>
  readonly output: () => string
  readonly stop: () => Promise<void>
}

const startWorker = (address: string, env: Record<string, string>) =>
  new Promise<Worker>((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "bench/live/clients.ts"], {
      cwd: root,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env, BENCH_LOCAL_ADDRESS: address },
      stdio: ["ignore", "pipe", "pipe", "ipc"]
    })
    started.add(child)
    let output = ""
    const keep = (chunk: Buffer) => {
      output = (output + chunk).slice(-20_000)
    }
    child.stdout?.on("data", keep)
    child.stderr?.on("data", keep)
    const waiting = new Map<number, { resolve: (reply: never) => void; reject: (error: Error) => void }>()
    let nextId = 1
    const exited = new Promise<void>((done) =>
      child.once("exit", (code, signal) => {
        started.delete(child)
        for (const pending of waiting.values()) {
          pending.reject(new Error(`client process ${address} exited (${code ?? signal}):\n${output}`))
        }
        waiting.clear()
        reject(new Error(`client process ${address} exited during start:\n${output}`))
        done()
      })
    )
    child.on("message", (message: { id: number; ok: boolean; reply?: never; error?: string }) => {
      if (message.id === 0) {
        resolve({
          pid: child.pid!,
          address,
          send: <A>(command: Command) =>
            new Promise<A>((resolveReply, rejectReply) => {
              const id = nextId++
              waiting.set(id, { resolve: resolveReply as (reply: never) => void, reject: rejectReply })
              child.send({ id, command })
            }),
          output: () => output,
          stop: async () => {
            if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
            await exited
          }
        })
        return
      }
      const pending = waiting.get(message.id)
      if (pending === undefined) return
      waiting.delete(message.id)
      if (message.ok) pending.resolve(message.reply as never)
      else pending.reject(new Error(`client process ${address}: ${message.error}`))
    })
  })

/** `count` client processes on 127.0.0.2, 127.0.0.3, … */
export const startWorkers = (count: number, env: Record<string, string> = {}) =>
  Promise.all(Array.from({ length: count }, (_, i) => startWorker(`127.0.0.${2 + i}`, env)))

export const stopWorkers = (workers: ReadonlyArray<Worker>) => Promise.all(workers.map((worker) => worker.stop()))

export const all = <A>(workers: ReadonlyArray<Worker>, command: (worker: Worker, index: number) => Command) =>
  Promise.all(workers.map((worker, i) => worker.send<A>(command(worker, i))))

/** Splits `items` over `parts` round-robin. */
export const deal = <A>(items: ReadonlyArray<A>, parts: number) =>
  Array.from({ length: parts }, (_, part) => items.filter((_, i) => i % parts === part))

/** The largest |clock offset| between this process and the workers, bounded by the IPC round trip. */
export const clockSkew = async (workers: ReadonlyArray<Worker>, clock: () => number) => {
  let worst = 0
  for (const worker of workers) {
    let best = { rtt: Number.POSITIVE_INFINITY, offset: 0 }
    for (let i = 0; i < 5; i++) {
      const sent = clock()
      const { now } = await worker.send<{ now: number }>({ cmd: "clock" })
      const back = clock()
      if (back - sent < best.rtt) best = { rtt: back - sent, offset: now - (sent + back) / 2 }
    }
    worst = Math.max(worst, Math.abs(best.offset) + best.rtt / 2)
  }
  return worst
}

export const mergeOpen = (reports: ReadonlyArray<OpenReport>) => {
  const errors: Record<string, number> = {}
  for (const report of reports) {
    for (const [why, count] of Object.entries(report.errors)) errors[why] = (errors[why] ?? 0) + count
  }
  return {
    opened: reports.reduce((sum, r) => sum + r.opened, 0),
    failed: reports.reduce((sum, r) => sum + r.failed, 0),
    reopened: reports.reduce((sum, r) => sum + r.reopened, 0),
    errors,
    startedAt: Math.min(...reports.map((r) => r.startedAt)),
    readyAt: reports.flatMap((r) => r.readyAt),
    openMs: reports.flatMap((r) => r.openMs),
    ticketMs: reports.flatMap((r) => r.ticketMs),
    sample: reports.find((r) => r.sample !== undefined)?.sample
  }
}

export const mergeCollect = (reports: ReadonlyArray<CollectReport>) => ({
  arrivals: reports.flatMap((r) => r.arrivals),
  missing: reports.reduce((sum, r) => sum + r.missing, 0),
  incorrect: reports.reduce((sum, r) => sum + r.incorrect, 0),
  extra: reports.reduce((sum, r) => sum + r.extra, 0),
  samples: reports.flatMap((r) => r.samples),
  sample: reports.find((r) => r.sample !== undefined)?.sample,
  bytes: Math.max(...reports.map((r) => r.bytes))
})

export const mergeStatus = (reports: ReadonlyArray<StatusReport>) => {
  const closes: Record<string, number> = {}
  for (const report of reports) {
    for (const [why, count] of Object.entries(report.unexpectedCloses)) closes[why] = (closes[why] ?? 0) + count
  }
  return { open: reports.reduce((sum, r) => sum + r.open, 0), unexpectedCloses: closes }
}

/** Nearest-rank percentile of unsorted values; NaN when empty. */
export const percentile = (values: ReadonlyArray<number>, p: number) => {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!
}

export const summary = (values: ReadonlyArray<number>) => ({
  p50: percentile(values, 50),
  p99: percentile(values, 99),
  max: values.length === 0 ? Number.NaN : Math.max(...values)
})

export const rssBytes = (pid: number) => {
  const line = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
  return Number(line?.[1] ?? 0) * 1024
}

/** File descriptors the process holds (the hard limit here is 20,000). */
export const openFds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length

/** Processes whose command line matches, with their children (a postmaster's backends). */
export const processTree = (matches: (cmdline: string) => boolean) => {
  const table = new Map<number, { ppid: number; cmdline: string }>()
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8")
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").replaceAll("\0", " ")
      table.set(Number(entry), { ppid, cmdline })
    } catch {
      // gone meanwhile
    }
  }
  const roots = [...table].filter(([, p]) => matches(p.cmdline)).map(([pid]) => pid)
  const found = new Set(roots)
  for (const [pid, p] of table) if (found.has(p.ppid)) found.add(pid)
  return [...found]
}

/** CPU of a set of processes in ms; processes that exited meanwhile count 0. */
/** CPU time (utime+stime, ms) of each of these processes now; a process that is gone is left out. */
export const treeCpu = (pids: ReadonlyArray<number>) => {
  const byPid = new Map<number, number>()
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      byPid.set(pid, ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK)
    } catch {
      // gone
    }
  }
  return byPid
}

/**
 * CPU time spent since `before` by the processes still running (a Postgres backend that exited in
 * between is left out rather than subtracted: the figure is a lower bound, never negative).
 */
export const treeCpuSinceMs = (before: ReadonlyMap<number, number>) => {
  let total = 0
  for (const [pid, ms] of treeCpu([...before.keys()])) total += ms - (before.get(pid) ?? ms)
  return total
}

/** Busy and total CPU time of the whole machine (all cores), in clock ticks, from /proc/stat. */
export const machineCpu = () => {
  const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number)
  const total = fields.slice(0, 8).reduce((sum, n) => sum + n, 0)
  const idle = fields[3]! + fields[4]!
  return { busy: total - idle, total }
}

export const fmtMs = (n: number) =>
  Number.isNaN(n) ? "—" : n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : Math.round(n).toLocaleString("en-US")

export const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(0)

/** A right-aligned markdown table. */
export const grid = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>) => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  const format = (cells: ReadonlyArray<string>) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |`
  const rule = `|${widths.map((w, i) => `${"-".repeat(w + 1)}${i === 0 ? "-" : ":"}`).join("|")}|`
  return [format(header), rule, ...rows.map(format)].join("\n")
}
