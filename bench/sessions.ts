/**
 * bench:sessions — how many authenticated live sessions one node holds, and how fast they all come
 * back after dropping at once.
 *
 * One server process (dist/src/main.js, built first) on throwaway Postgres and Redis (or BENCH_DATABASE_URL /
 * BENCH_REDIS_URL); an organization built through the API (bench/live/stack.ts) whose members hold
 * BENCH_SOCKETS_PER_USER sessions each (MAX_SOCKETS_PER_USER is set to the same); the clients in
 * BENCH_WORKERS processes (bench/live/clients.ts), each on its own loopback source address.
 *
 *  1. Ramp: sessions are opened in steps of BENCH_STEP (ticket, upgrade, hello; 64 at once) up to
 *     BENCH_MAX_SESSIONS. A process here may hold 20,000 files, so the ramp stops before the
 *     server's descriptors would pass ~19,800. After each step: the server's RSS and descriptors, the
 *     open rate and the server's CPU per session opened. RSS per session is fitted over the steps and
 *     the count at 2 GiB is projected from it (a projection, not a measurement).
 *  2. Reconnect storm: every client drops its socket at once; once the server has closed them all,
 *     every client asks for a fresh ticket and reconnects at once (tickets over BENCH_HTTP_CONNECTIONS
 *     keep-alive connections per client process: the server has no descriptors left for one HTTP
 *     connection per session). Reported: the time until every session has its hello again, the rate,
 *     and the server's CPU.
 *
 *   yarn bench:sessions                               # up to 19,000 sessions, steps of 2,000
 *   BENCH_MAX_SESSIONS=10000 yarn bench:sessions
 */
import { availableParallelism, totalmem } from "node:os"
import { setTimeout as sleep } from "node:timers/promises"
import { heapAfterGc } from "../test/support/Heap.ts"
import {
  CLK_TCK,
  cpuModel,
  cpuUs,
  freePort,
  isRunning,
  loadAverage,
  num,
  OUR_SERVER_LABEL,
  positiveInt,
  revision,
  runBench,
  version
} from "./harness.ts"
import type { OpenReport, StatusReport } from "./live/clients.ts"
import { buildOrganization, logLines, metrics, type Stack, startStack } from "./live/stack.ts"
import {
  all,
  deal,
  fmtMs,
  grid,
  machineCpu,
  mergeOpen,
  mergeStatus,
  mib,
  now,
  openFds,
  rssBytes,
  startWorkers,
  stopWorkers,
  summary,
  treeCpu,
  treeCpuSinceMs,
  type Worker
} from "./live/workers.ts"

const MAX = positiveInt("BENCH_MAX_SESSIONS", 19_000)
const STEP = positiveInt("BENCH_STEP", 2_000)
const PER_USER = positiveInt("BENCH_SOCKETS_PER_USER", 50)
const WORKERS = positiveInt("BENCH_WORKERS", Math.max(4, Math.ceil(MAX / 4_750)))
const HTTP_CONNECTIONS = positiveInt("BENCH_HTTP_CONNECTIONS", 8)
const OPEN_CONCURRENCY = 64
const FD_LIMIT = 20_000
const FD_HEADROOM = 200
const SETTLE_MS = 2_000
const GIB2 = 2 * 1024 ** 3

const say = (text: string) => process.stderr.write(`${text}\n`)

const cpuMs = (pid: number) => {
  const { user, sys } = cpuUs(pid)
  return (user + sys) / 1000
}

interface Step {
  readonly sessions: number
  readonly opened: number
  readonly seconds: number
  readonly openMs: ReturnType<typeof summary>
  readonly ticketMs: ReturnType<typeof summary>
  readonly serverCpuMs: number
  readonly postgresCpuMs: number
  readonly workersCpuMs: number
  readonly rss: number
  /** The JavaScript heap in use after a full GC (through the inspector). */
  readonly heap: number
  readonly fds: number
  readonly live: number
}

/** Least-squares line through (sessions, RSS). */
const leastSquares = (points: ReadonlyArray<{ x: number; y: number }>) => {
  const n = points.length
  const mx = points.reduce((s, p) => s + p.x, 0) / n
  const my = points.reduce((s, p) => s + p.y, 0) / n
  const sxx = points.reduce((s, p) => s + (p.x - mx) ** 2, 0)
  const sxy = points.reduce((s, p) => s + (p.x - mx) * (p.y - my), 0)
  const slope = sxy / sxx
  return { slope, intercept: my - slope * mx }
}

const logDelta = (stack: Stack) => {
  let before = new Map<string, number>()
  return () => {
    const current = new Map(stack.logCounts())
    const lines = logLines(
      new Map([...current].map(([key, count]) => [key, count - (before.get(key) ?? 0)])),
      stack.logCauses()
    )
    before = current
    return lines.length === 0 ? " no warnings or errors" : `\n${lines.join("\n")}`
  }
}

const main = async () => {
  const began = performance.now()
  const loadBefore = loadAverage()
  const code = revision()
  const date = new Date().toISOString()
  const users = Math.ceil(MAX / PER_USER)
  const inspectPort = await freePort()
  const stack = await startStack({
    MAX_SOCKETS_PER_USER: String(PER_USER),
    NODE_OPTIONS: `--inspect=127.0.0.1:${inspectPort}`
  })
  let workers: ReadonlyArray<Worker> = []
  try {
    const logs = logDelta(stack)
    const org = await buildOrganization(stack, users)
    const setupLogs = logs()
    workers = await startWorkers(WORKERS, { BENCH_HTTP_CONNECTIONS: String(HTTP_CONNECTIONS) })
    const tokens = Array.from({ length: MAX }, (_, i) => org.tokens[i % users]!)
    await sleep(SETTLE_MS)
    const services = stack.servicePids()
    const base = { rss: rssBytes(stack.pid), fds: openFds(stack.pid), heap: await heapAfterGc(inspectPort) }
    say(
      `ramp: ${users} members set up in ${org.seconds.toFixed(0)} s; RSS ${mib(base.rss)} MiB, ${base.fds} descriptors`
    )

    // --- 1. the ramp --------------------------------------------------------------------------------
    const steps: Array<Step> = []
    /** Sessions held by each worker, as token lists, for the storm. */
    const held: Array<Array<string>> = workers.map(() => [])
    let sessions = 0
    let stopped = ""
    while (sessions < MAX) {
      const target = Math.min(MAX, sessions + STEP)
      const fds = openFds(stack.pid)
      if (fds + (target - sessions) + FD_HEADROOM > FD_LIMIT) {
        stopped = `stopped before ${num(target)}: the server holds ${num(fds)} descriptors of ${num(FD_LIMIT)}`
        break
      }
      const batch = deal(tokens.slice(sessions, target), workers.length)
      const server0 = cpuMs(stack.pid)
      const pg0 = treeCpu(services.postgres)
      const workers0 = workers.reduce((s, w) => s + cpuMs(w.pid), 0)
      const t0 = now()
      const open = mergeOpen(
        await all<OpenReport>(workers, (_, i) => ({
          cmd: "open",
          kind: "ours",
          url: stack.base,
          wsUrl: stack.wsUrl,
          organizationId: org.organizationId,
          tokens: batch[i]!,
          concurrency: OPEN_CONCURRENCY / workers.length
        }))
      )
      const seconds = (now() - t0) / 1000
      const serverCpuMs = cpuMs(stack.pid) - server0
      const postgresCpuMs = treeCpuSinceMs(pg0)
      const workersCpuMs = workers.reduce((s, w) => s + cpuMs(w.pid), 0) - workers0
      if (open.failed > 0) {
        const lines = logLines(stack.logCounts(), stack.logCauses())
        throw new Error(
          `${open.failed} of ${target - sessions} sessions did not open: ${JSON.stringify(open.errors)}\n` +
            `server log lines at WARN and above:\n${lines.join("\n")}`
        )
      }
      for (const [i, mine] of batch.entries()) held[i]!.push(...mine)
      sessions = target
      await sleep(SETTLE_MS)
      const live = (await metrics(stack.wsBase)).live_sessions ?? 0
      const step: Step = {
        sessions,
        opened: open.opened,
        seconds,
        openMs: summary(open.openMs),
        ticketMs: summary(open.ticketMs),
        serverCpuMs,
        postgresCpuMs,
        workersCpuMs,
        rss: rssBytes(stack.pid),
        heap: await heapAfterGc(inspectPort),
        fds: openFds(stack.pid),
        live
      }
      steps.push(step)
      say(
        `ramp: ${num(sessions)} sessions (server says ${num(live)}), +${num(open.opened)} in ${seconds.toFixed(1)} s, ` +
          `RSS ${mib(step.rss)} MiB, ${num(step.fds)} descriptors` +
          (open.reopened > 0 ? `; ${open.reopened} dropped right after the upgrade and reopened` : "")
      )
      if (live !== sessions) throw new Error(`the server reports ${live} live sessions, not ${sessions}`)
      if (step.rss > GIB2) {
        stopped = `stopped at ${num(sessions)}: RSS passed 2 GiB`
        break
      }
    }
    if (stopped !== "") say(`ramp: ${stopped}`)
    const rampLogs = logs()

    // --- 2. the storm -------------------------------------------------------------------------------
    say(`storm: dropping ${num(sessions)} sessions at once`)
    const dropServer0 = cpuMs(stack.pid)
    const dropStart = now()
    await all(workers, () => ({ cmd: "close" }))
    let drained: Record<string, number> = {}
    /** /metrics probes that got no answer within 1 s: the server's event loop was busy closing. */
    let unanswered = 0
    while (true) {
      const answer = await metrics(stack.wsBase).catch(() => undefined)
      if (answer === undefined) unanswered += 1
      else drained = answer
      if (answer !== undefined && (drained.live_sessions ?? 0) === 0 && (drained.live_sockets ?? 0) === 0) break
      if (now() - dropStart > 60_000) {
        throw new Error(`the server still holds ${drained.live_sessions} sessions 60 s after the drop`)
      }
      await sleep(20)
    }
    const dropMs = now() - dropStart
    const dropServerMs = cpuMs(stack.pid) - dropServer0
    const fdsAfterDrop = openFds(stack.pid)
    say(`storm: the server closed them all in ${fmtMs(dropMs)} ms; reconnecting all at once`)
    const server0 = cpuMs(stack.pid)
    const pg0 = treeCpu(services.postgres)
    const redis0 = treeCpu(services.redis)
    const workers0 = workers.reduce((s, w) => s + cpuMs(w.pid), 0)
    const machine0 = machineCpu()
    const stormStart = now()
    const storm = mergeOpen(
      await all<OpenReport>(workers, (_, i) => ({
        cmd: "open",
        kind: "ours",
        url: stack.base,
        wsUrl: stack.wsUrl,
        organizationId: org.organizationId,
        tokens: held[i]!,
        concurrency: 0
      }))
    )
    const stormEnd = now()
    const stormServerMs = cpuMs(stack.pid) - server0
    const stormPgMs = treeCpuSinceMs(pg0)
    const stormRedisMs = treeCpuSinceMs(redis0)
    const stormWorkersMs = workers.reduce((s, w) => s + cpuMs(w.pid), 0) - workers0
    const machine1 = machineCpu()
    const stormMachineMs = ((machine1.busy - machine0.busy) * 1000) / CLK_TCK
    const lastHello = Math.max(...storm.readyAt)
    const allBackMs = lastHello - stormStart
    const sinceStart = storm.readyAt.map((t) => t - stormStart)
    const back = summary(sinceStart)
    const firstSecond = sinceStart.filter((t) => t <= 1000).length
    await sleep(SETTLE_MS)
    const after = await metrics(stack.wsBase)
    const status = mergeStatus(await all<StatusReport>(workers, () => ({ cmd: "status" })))
    const stormLogs = logs()
    say(
      `storm: ${num(storm.opened)} of ${num(sessions)} back in ${fmtMs(allBackMs)} ms ` +
        `(${num(storm.opened / (allBackMs / 1000))} sessions/s); ${num(storm.failed)} failed`
    )
    if (!isRunning(stack.server.child)) throw new Error(`the server exited:\n${stack.server.output()}`)

    // --- report ---------------------------------------------------------------------------------------
    const line = leastSquares([{ x: 0, y: base.rss }, ...steps.map((s) => ({ x: s.sessions, y: s.rss }))])
    const last = steps[steps.length - 1]!
    const simple = (last.rss - base.rss) / last.sessions
    const heapLine = leastSquares([{ x: 0, y: base.heap }, ...steps.map((s) => ({ x: s.sessions, y: s.heap }))])
    const projected = (GIB2 - line.intercept) / line.slope
    const rows = steps.map((s, i) => {
      const previous = i === 0 ? base.rss : steps[i - 1]!.rss
      return [
        num(s.sessions),
        num(s.opened / s.seconds),
        `${fmtMs(s.ticketMs.p50)} / ${fmtMs(s.ticketMs.p99)}`,
        `${fmtMs(s.openMs.p50)} / ${fmtMs(s.openMs.p99)}`,
        num((s.serverCpuMs * 1000) / s.opened),
        num((s.postgresCpuMs * 1000) / s.opened),
        num((100 * s.serverCpuMs) / (s.seconds * 1000)),
        num((100 * s.workersCpuMs) / (s.seconds * 1000)),
        mib(s.rss),
        num((s.rss - previous) / s.opened / 1024, 1),
        num(s.fds)
      ]
    })
    const share = (ms: number) => num((100 * ms) / (stormEnd - stormStart))
    console.log(
      [
        "",
        `bench:sessions — ${date}`,
        `machine: ${cpuModel()}, ${availableParallelism()} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; ` +
          `load average ${loadBefore} before, ${loadAverage()} after`,
        `versions: effect ${version("effect")}, uWebSockets.js (${version("uWebSockets.js")}), ws ${version("ws")} (clients)`,
        `ours: ${OUR_SERVER_LABEL} at ${code}, one node, Postgres ${process.env.BENCH_DATABASE_URL ? "(given)" : "(throwaway, fsync off)"}, ` +
          `Redis ${process.env.BENCH_REDIS_URL ? "(given)" : "(throwaway)"}, LOG_LEVEL=warning, MAX_SOCKETS_PER_USER=${PER_USER}`,
        `sessions: up to ${num(MAX)} = ${num(users)} members × ${PER_USER} (set up through the API in ${org.seconds.toFixed(0)} s); ` +
          `one ticket per session; ${WORKERS} client processes on 127.0.0.2–127.0.0.${1 + WORKERS}`,
        `limits: ${num(FD_LIMIT)} open files per process (hard); the ramp keeps ${FD_HEADROOM} spare`,
        "",
        `1. ramp, ${num(STEP)} sessions a step, ${OPEN_CONCURRENCY} opening at once; before: RSS ${mib(base.rss)} MiB, ${num(base.fds)} descriptors`,
        "",
        grid(
          [
            "sessions",
            "opened/s",
            "ticket p50 / p99 ms",
            "ticket→hello p50 / p99 ms",
            "server CPU µs/session",
            "Postgres CPU µs/session",
            "server CPU %",
            "clients CPU %",
            "RSS MiB",
            "KiB/session (step)",
            "descriptors"
          ],
          rows
        ),
        "",
        ...(stopped === "" ? [] : [stopped, ""]),
        `heap per session (after a full GC): ${num((last.heap - base.heap) / last.sessions / 1024, 1)} KiB ` +
          `(${mib(base.heap)} MiB before, ${mib(last.heap)} MiB at ${num(last.sessions)}); least-squares slope ${num(heapLine.slope / 1024, 1)} KiB/session`,
        `RSS per session: ${num(simple / 1024, 1)} KiB (RSS at ${num(last.sessions)} minus before, over ${num(last.sessions)}); ` +
          `least-squares slope ${num(line.slope / 1024, 1)} KiB/session, intercept ${mib(line.intercept)} MiB`,
        `projection, not measured: RSS would reach 2 GiB at about ${num(Math.floor(projected / 100) * 100)} sessions ` +
          `if it stays linear; measured up to ${num(last.sessions)} at ${mib(last.rss)} MiB. ` +
          "One process here cannot hold more than ~19.5k sockets (20,000 files).",
        "",
        `2. reconnect storm at ${num(sessions)} sessions`,
        `drop: every client closed its socket at once; the server had closed all of them after ${fmtMs(dropMs)} ms ` +
          `(server CPU ${num(dropServerMs)} ms; ${num(fdsAfterDrop)} descriptors left)` +
          (unanswered === 0 ? "" : `; ${unanswered} GET /metrics probes went unanswered for 1 s meanwhile`),
        `reconnect: all at once, each a fresh ticket (POST /v1/realtime/tickets over ${HTTP_CONNECTIONS} keep-alive connections ` +
          `per client process, ${HTTP_CONNECTIONS * WORKERS} in all) then upgrade and hello`,
        `  back: ${num(storm.opened)} of ${num(sessions)} (failed ${num(storm.failed)}${storm.failed > 0 ? `: ${JSON.stringify(storm.errors)}` : ""}; ` +
          `${num(storm.reopened)} dropped by the server right after the upgrade and reopened); ` +
          `the server reports ${num(after.live_sessions ?? 0)} live sessions after`,
        `  time until every session had its hello again: ${fmtMs(allBackMs)} ms → ${num(storm.opened / (allBackMs / 1000))} sessions/s`,
        `  per session, from the storm's start to its hello: p50 ${fmtMs(back.p50)} ms, p99 ${fmtMs(back.p99)} ms, max ${fmtMs(back.max)} ms; ` +
          `${num(firstSecond)} back within 1 s`,
        `  ticket requests: p50 ${fmtMs(summary(storm.ticketMs).p50)} ms, p99 ${fmtMs(summary(storm.ticketMs).p99)} ms (queueing in the client pools included)`,
        `  CPU over the storm: server ${num(stormServerMs)} ms = ${num((stormServerMs * 1000) / storm.opened)} µs/session, ${share(stormServerMs)}% of a core; ` +
          `Postgres ${num(stormPgMs)} ms (${share(stormPgMs)}%), Redis ${num(stormRedisMs)} ms (${share(stormRedisMs)}%), ` +
          `client processes ${num(stormWorkersMs)} ms (${share(stormWorkersMs)}%); machine ${share(stormMachineMs)}% of ${availableParallelism() * 100}%`,
        `  unexpected closes seen by the clients during the whole run: ${
          Object.keys(status.unexpectedCloses).length === 0 ? "none" : JSON.stringify(status.unexpectedCloses)
        }`,
        "",
        "server log lines at WARN and above (LOG_LEVEL=warning):",
        `setup:${setupLogs}`,
        `ramp:${rampLogs}`,
        `storm:${stormLogs}`,
        "",
        `total ${((performance.now() - began) / 1000).toFixed(0)} s`
      ].join("\n")
    )
  } finally {
    await stopWorkers(workers)
    await stack.stop()
  }
}

runBench(main)
