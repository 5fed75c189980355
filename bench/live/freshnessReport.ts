/**
 * The figures and the printed report of bench:freshness (bench/freshness.ts): the CPU of each party
 * over a window, what our run found (its changes, the frames matched to them, the server's counters),
 * and the report on stdout: the latency table beside the baselines, where the time goes (from the
 * taps), the slowest changes, the frames counted, and the CPU.
 */
import { availableParallelism, totalmem } from "node:os"
import { LiveLimits } from "../../src/rpc/LiveProtocol.ts"
import { CLK_TCK, cpuModel, cpuUs, loadAverage, num, OUR_SERVER_LABEL, version } from "../harness.ts"
import { PAUSE_MS, type Plan, REVISIT_MS, type Stats, stats, type WsBaseline } from "./freshnessTaps.ts"
import { fmtMs, grid, machineCpu, now, treeCpu, treeCpuSinceMs } from "./workers.ts"

const TARGET_P99_MS = 20

const cpuMs = (pid: number) => {
  const { user, sys } = cpuUs(pid)
  return (user + sys) / 1000
}

/** CPU (ms) of each party over a window, and of the whole machine; `rest` is everything else running. */
export const cpuWindow = (parties: {
  readonly server: number
  readonly workers: ReadonlyArray<number>
  readonly services: ReadonlyArray<number>
}) => {
  const startedAt = now()
  const server = cpuMs(parties.server)
  const workers = treeCpu(parties.workers)
  const services = treeCpu(parties.services)
  const self = process.cpuUsage()
  const machine = machineCpu()
  return () => {
    const own = process.cpuUsage(self)
    const m = machineCpu()
    const wallMs = now() - startedAt
    const shares = {
      server: cpuMs(parties.server) - server,
      clients: treeCpuSinceMs(workers),
      bench: (own.user + own.system) / 1000,
      services: treeCpuSinceMs(services),
      machine: ((m.busy - machine.busy) * 1000) / CLK_TCK
    }
    return {
      wallMs,
      ...shares,
      rest: Math.max(0, shares.machine - shares.server - shares.clients - shares.bench - shares.services)
    }
  }
}
type CpuShares = ReturnType<ReturnType<typeof cpuWindow>>
const pct = (ms: number, wallMs: number) => `${num((100 * ms) / wallMs)}%`
const cpuLine = (c: CpuShares) =>
  `server ${pct(c.server, c.wallMs)}, client processes ${pct(c.clients, c.wallMs)}, bench process ${pct(c.bench, c.wallMs)}, ` +
  `Postgres + Redis ${pct(c.services, c.wallMs)}, everything else on the machine ${pct(c.rest, c.wallMs)}; ` +
  `machine ${pct(c.machine, c.wallMs)} of ${availableParallelism() * 100}% (over ${(c.wallMs / 1000).toFixed(1)} s)`

const fmt = (n: number) => (Number.isNaN(n) ? "—" : n < 0 ? `−${fmtMs(-n)}` : fmtMs(n))
const row = (name: string, s: Stats) => [name, num(s.n), fmt(s.min), fmt(s.p50), fmt(s.p90), fmt(s.p99), fmt(s.max)]
const HEADER = ["from → to", "n", "min ms", "p50 ms", "p90 ms", "p99 ms", "max ms"]

export interface Change {
  readonly index: number
  readonly probe: number
  readonly warmup: boolean
  readonly revision: string
  readonly expected: Record<string, unknown>
  readonly sentAt: number
  readonly answeredAt: number
  /** The first `outbox_committed` notification after the write was sent. */
  committedAt: number | undefined
  /** When the tap's blocked XREAD returned the change's event. */
  streamedAt: number | undefined
  frameAt: number | undefined
}

export interface Ours {
  readonly changes: ReadonlyArray<Change>
  readonly right: number
  readonly wrong: number
  readonly missing: number
  readonly duplicate: number
  readonly stray: number
  readonly wrongSamples: ReadonlyArray<string>
  readonly others: { readonly got: number; readonly samples: ReadonlyArray<string>; readonly open: number }
  readonly unexpectedCloses: Record<string, number>
  readonly counters: { readonly recomputations: number; readonly loads: number; readonly pushes: number }
  readonly idleCpu: CpuShares
  readonly pgPerChange: number
  readonly redisPerChange: number
  readonly changeCpu: CpuShares
  readonly revisitWaits: number
  readonly sample: string
  readonly setupSeconds: number
  readonly openSeconds: number
  readonly reopened: number
  readonly users: number
  readonly logs: ReadonlyArray<string>
  readonly redis: Stats
  readonly frameBytes: number
}

/** Frames wrong, missing, duplicated or misdelivered: any of them fails the run. */
export const failuresOf = (mine: Ours) => mine.wrong + mine.missing + mine.duplicate + mine.stray + mine.others.got

/** How the run was made, for the report's head. */
export interface Run {
  readonly plan: Plan
  readonly startedAt: number
  readonly loadBefore: string
  readonly code: string
  readonly date: string
  readonly givenPg: string | undefined
  readonly givenRedis: string | undefined
}

/** The report printed on stdout. */
export const report = (run: Run, mine: Ours, ws: WsBaseline) => {
  const { plan, givenPg, givenRedis } = run
  const { sessions: N, warmup: WARMUP, changes: CHANGES, perUser: PER_USER } = plan
  const measured = mine.changes.filter((c) => !c.warmup && c.frameAt !== undefined)
  const fromAnswer = stats(measured.map((c) => c.frameAt! - c.answeredAt))
  const fromSend = stats(measured.map((c) => c.frameAt! - c.sentAt))
  const tapped = measured.filter((c) => c.committedAt !== undefined && c.streamedAt !== undefined)
  const stages = [
    row("t− → commit (its NOTIFY seen)", stats(tapped.map((c) => c.committedAt! - c.sentAt))),
    row("commit → t0 (the answer)", stats(tapped.map((c) => c.answeredAt - c.committedAt!))),
    row("commit → XADD seen (the relay)", stats(tapped.map((c) => c.streamedAt! - c.committedAt!))),
    row("t0 → XADD seen", stats(tapped.map((c) => c.streamedAt! - c.answeredAt))),
    row("XADD seen → frame (feed, router, actor, socket)", stats(tapped.map((c) => c.frameAt! - c.streamedAt!)))
  ]
  const d = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? "—" : fmt(a - b))
  const slowest = [...measured]
    .sort((a, b) => b.frameAt! - b.answeredAt - (a.frameAt! - a.answeredAt))
    .slice(0, 5)
    .map((c) => [
      `#${c.index} (rev ${c.revision}, probe ${c.probe})`,
      fmt(c.frameAt! - c.answeredAt),
      d(c.committedAt, c.sentAt),
      d(c.answeredAt, c.committedAt),
      d(c.streamedAt, c.committedAt),
      d(c.frameAt, c.streamedAt)
    ])
  const met = fromAnswer.p99 <= TARGET_P99_MS
  const perChange = (n: number) => (n / (WARMUP + CHANGES)).toFixed(2)
  return [
    "",
    `bench:freshness — ${run.date}`,
    `machine: ${cpuModel()}, ${availableParallelism()} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; ` +
      `load average ${run.loadBefore} before, ${loadAverage()} after`,
    `versions: effect ${version("effect")}, uWebSockets.js (${version("uWebSockets.js")}), ioredis ${version("ioredis")}, ws ${version("ws")}`,
    `ours: ${OUR_SERVER_LABEL} at ${run.code}, one node, Postgres ${givenPg ? "(given)" : "(throwaway, fsync off)"}, ` +
      `Redis ${givenRedis ? "(given)" : "(throwaway)"}, LOG_LEVEL=warning, MAX_SOCKETS_PER_USER=${PER_USER}`,
    `sessions: ${num(N)} = ${num(mine.users)} members × ${PER_USER} (reader), from ${plan.workers} client processes ` +
      `(opened in ${mine.openSeconds.toFixed(0)} s; ${mine.reopened} dropped right after the upgrade and reopened), ` +
      `plus ${plan.probes} probe members with one session each in the bench process; setup through the API in ${mine.setupSeconds.toFixed(0)} s`,
    `change: the owner gives the role writer (docs:write) to the next probe (POST …/assignments) or takes it back ` +
      `(DELETE …/assignments/{id}), one at a time, ${PAUSE_MS.min}–${PAUSE_MS.max} ms apart; ${WARMUP} warm-up changes, then ${CHANGES} measured; ` +
      `a probe is changed again ≥ ${REVISIT_MS} ms after its last frame (recomputeEveryMs ${LiveLimits.recomputeEveryMs}; waited ${mine.revisitWaits}×)`,
    `frame: ${mine.frameBytes} bytes, e.g. ${mine.sample}`,
    `t0 = the write's answer (head) arriving; t− = just before it is sent; all times in the bench process's clock`,
    "",
    grid(HEADER, [
      row("ours: t0 (write answered) → frame", fromAnswer),
      row("ours: t− (write sent) → frame", fromSend),
      row("baseline Redis: XADD sent → blocked XREAD woken", mine.redis),
      row("baseline ws 8: POST /send sent → frame", ws.fromSend)
    ]),
    "",
    `target: p99 from t0 ≤ ${TARGET_P99_MS} ms → ${met ? "met" : "NOT met"} (${fmt(fromAnswer.p99)} ms); ` +
      `ours / Redis wake-up p99 ${(fromAnswer.p99 / mine.redis.p99).toFixed(1)}×, ours (t−) / ws 8 (send) p99 ${(fromSend.p99 / ws.fromSend.p99).toFixed(1)}×`,
    "",
    "where the time goes (ours, measured changes; taps: LISTEN outbox_committed and a blocked XREAD on the event stream, in the bench process):",
    grid(HEADER, stages),
    "",
    "the 5 slowest changes from t0 (ms):",
    grid(["change", "t0 → frame", "t− → commit", "commit → t0", "commit → XADD seen", "XADD seen → frame"], slowest),
    "",
    `frames: ${num(mine.right)} right, ${num(mine.missing)} missing, ${num(mine.wrong)} wrong, ${num(mine.duplicate)} duplicate, ` +
      `${num(mine.stray)} stray on the probes; ${num(mine.others.got)} frames on the other ${num(N)} sessions ` +
      `(${num(mine.others.open)} still open, unexpected closes ${Object.keys(mine.unexpectedCloses).length === 0 ? "none" : JSON.stringify(mine.unexpectedCloses)}); ` +
      `ws baseline: ${ws.missing} missing, ${ws.others} on the other clients`,
    ...mine.wrongSamples.map((s) => `  wrong: ${s}`),
    ...mine.others.samples.map((s) => `  on another session: ${s}`),
    `server counters per change: ${perChange(mine.counters.recomputations)} recomputed, ${perChange(mine.counters.loads)} loaded, ` +
      `${perChange(mine.counters.pushes)} pushed; server CPU ${num((mine.changeCpu.server - (mine.idleCpu.server * mine.changeCpu.wallMs) / mine.idleCpu.wallMs) / (WARMUP + CHANGES), 1)} ms per change above idle; ` +
      `Postgres ${mine.pgPerChange.toFixed(1)} transactions per change (a statement outside one counts as one), Redis ${mine.redisPerChange.toFixed(1)} commands per change (pg_stat_database, INFO stats; the taps' own left out)`,
    `CPU (utime+stime from /proc, ${(1000 / CLK_TCK).toFixed(0)} ms ticks; 100% = one core):`,
    `  idle, before the changes: ${cpuLine(mine.idleCpu)}`,
    `  over the changes, pauses included: ${cpuLine(mine.changeCpu)}`,
    `server log lines at WARN and above: ${mine.logs.length === 0 ? "none" : `\n${mine.logs.join("\n")}`}`,
    "",
    `total ${((performance.now() - run.startedAt) / 1000).toFixed(0)} s`
  ].join("\n")
}
