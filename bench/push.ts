/**
 * bench:push — one role change fanned out to N live sessions on one node, beside the same fan-out of
 * an equal-size JSON message through a plain `ws` server and a Socket.IO server.
 *
 * Ours: one server process (dist/src/main.js, built first) on throwaway Postgres and Redis (or BENCH_DATABASE_URL /
 * BENCH_REDIS_URL). An organization is built through the API (bench/live/stack.ts): members who
 * hold the role `reader` (docs:read), BENCH_SOCKETS_PER_USER live sessions each (MAX_SOCKETS_PER_USER
 * is set to the same). N sessions are opened from BENCH_WORKERS client processes (bench/live/clients.ts),
 * each on its own loopback source address, each with a ticket of its own. Then, BENCH_ROUNDS times,
 * the owner replaces the grants of `reader` (PUT …/roles/{id}/grants), alternately adding and
 * removing `docs:write`, and every client records when its `permissions` diff arrives and whether it
 * is exactly `{type, revision (the write's), added, removed}`.
 *
 * Latency is measured from t− (just before the PUT is sent: the commit happens after it) and from
 * t0 (when the PUT's answer arrives: the commit happened before it). Baselines: the same clients,
 * a `POST /broadcast` to bench/servers/ws-fanout.ts and bench/servers/socketio-fanout.ts, from the
 * moment it is sent.
 *
 *   yarn bench:push                        # N = 10,000
 *   BENCH_SESSIONS=15000 yarn bench:push   # at most ~19,000: a process holds 20,000 files here
 */
import { availableParallelism, totalmem } from "node:os"
import { setTimeout as sleep } from "node:timers/promises"
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
  probe,
  revision,
  runBench,
  startNode,
  stop,
  version
} from "./harness.ts"
import type { CollectReport, Expected, OpenReport, StatusReport } from "./live/clients.ts"
import { buildOrganization, call, logLines, metrics, startStack } from "./live/stack.ts"
import {
  all,
  clockSkew,
  deal,
  fmtMs,
  grid,
  machineCpu,
  mergeCollect,
  mergeOpen,
  mergeStatus,
  mib,
  now,
  rssBytes,
  startWorkers,
  stopWorkers,
  summary,
  treeCpu,
  treeCpuSinceMs,
  type Worker
} from "./live/workers.ts"

const N = positiveInt("BENCH_SESSIONS", 10_000)
const PER_USER = positiveInt("BENCH_SOCKETS_PER_USER", 50)
const ROUNDS = positiveInt("BENCH_ROUNDS", 3)
const WORKERS = positiveInt("BENCH_WORKERS", Math.max(4, Math.ceil(N / 4_750)))
const OPEN_CONCURRENCY = 64
const SETTLE_MS = 3_000
const COLLECT_TIMEOUT_MS = 60_000

const say = (text: string) => process.stderr.write(`${text}\n`)

interface Round {
  readonly round: number
  readonly fromSend: ReturnType<typeof summary>
  readonly fromAnswer: ReturnType<typeof summary> | undefined
  readonly received: number
  readonly missing: number
  readonly incorrect: number
  readonly extra: number
  readonly samples: ReadonlyArray<string>
  readonly sample: string | undefined
  readonly bytes: number
  readonly serverCpuMs: number
  readonly workersCpuMs: number
  readonly postgresCpuMs: number | undefined
  readonly redisCpuMs: number | undefined
  readonly machineBusyMs: number
  readonly wallMs: number
  readonly recomputations: number | undefined
  readonly loads: number | undefined
  readonly pushes: number | undefined
}

interface Run {
  readonly name: string
  readonly rounds: ReadonlyArray<Round>
  readonly rssBefore: number
  readonly rssWith: number
  readonly open: ReturnType<typeof mergeOpen>
  readonly openSeconds: number
  readonly status: ReturnType<typeof mergeStatus>
  readonly notes: ReadonlyArray<string>
}

const cpuMs = (pid: number) => {
  const { user, sys } = cpuUs(pid)
  return (user + sys) / 1000
}
const workersCpuMs = (workers: ReadonlyArray<Worker>) => workers.reduce((sum, w) => sum + cpuMs(w.pid), 0)

/** Opens `tokens.length` clients (or N for the baselines) over the workers and checks they all opened. */
const openAll = async (
  workers: ReadonlyArray<Worker>,
  command: (tokens: ReadonlyArray<string>) => Parameters<Worker["send"]>[0],
  tokens: ReadonlyArray<string>
) => {
  const began = now()
  const open = mergeOpen(await all<OpenReport>(workers, (_, i) => command(deal(tokens, workers.length)[i]!)))
  const seconds = (now() - began) / 1000
  if (open.failed > 0) {
    throw new Error(`${open.failed} of ${tokens.length} clients did not open: ${JSON.stringify(open.errors)}`)
  }
  return { open, seconds }
}

/** One fan-out: arm the clients, run `write` (returns t0 and what to expect), collect, count CPU. */
const fanOut = async (
  workers: ReadonlyArray<Worker>,
  serverPid: number,
  round: number,
  write: () => Promise<{ answeredAt: number | undefined; expect: Expected }>,
  counters?: () => Promise<{ recomputations: number; loads: number; pushes: number }>,
  services: { readonly postgres: ReadonlyArray<number>; readonly redis: ReadonlyArray<number> } = {
    postgres: [],
    redis: []
  }
): Promise<Round> => {
  await all(workers, () => ({ cmd: "arm" }))
  const countersBefore = await counters?.()
  const pg0 = treeCpu(services.postgres)
  const redis0 = treeCpu(services.redis)
  const server0 = cpuMs(serverPid)
  const workers0 = workersCpuMs(workers)
  const machine0 = machineCpu()
  const sentAt = now()
  const { answeredAt, expect } = await write()
  const collected = mergeCollect(
    await all<CollectReport>(workers, () => ({ cmd: "collect", expect, timeoutMs: COLLECT_TIMEOUT_MS }))
  )
  const doneAt = now()
  const server1 = cpuMs(serverPid)
  const workers1 = workersCpuMs(workers)
  const machine1 = machineCpu()
  const pgMs = treeCpuSinceMs(pg0)
  const redisMs = treeCpuSinceMs(redis0)
  await sleep(500)
  const countersAfter = await counters?.()
  return {
    round,
    fromSend: summary(collected.arrivals.map((t) => t - sentAt)),
    fromAnswer: answeredAt === undefined ? undefined : summary(collected.arrivals.map((t) => t - answeredAt)),
    received: collected.arrivals.length,
    missing: collected.missing,
    incorrect: collected.incorrect,
    extra: collected.extra,
    samples: collected.samples,
    sample: collected.sample,
    bytes: collected.bytes,
    serverCpuMs: server1 - server0,
    workersCpuMs: workers1 - workers0,
    postgresCpuMs: services.postgres.length === 0 ? undefined : pgMs,
    redisCpuMs: services.redis.length === 0 ? undefined : redisMs,
    machineBusyMs: ((machine1.busy - machine0.busy) * 1000) / CLK_TCK,
    wallMs: doneAt - sentAt,
    recomputations:
      countersBefore && countersAfter ? countersAfter.recomputations - countersBefore.recomputations : undefined,
    loads: countersBefore && countersAfter ? countersAfter.loads - countersBefore.loads : undefined,
    pushes: countersBefore && countersAfter ? countersAfter.pushes - countersBefore.pushes : undefined
  }
}

const ours = async (): Promise<Run & { frame: string; setupSeconds: number; users: number; skewMs: number }> => {
  const users = Math.ceil(N / PER_USER)
  const stack = await startStack({ MAX_SOCKETS_PER_USER: String(PER_USER) })
  let workers: ReadonlyArray<Worker> = []
  try {
    const org = await buildOrganization(stack, users)
    say(`ours: ${users} members set up in ${org.seconds.toFixed(1)} s; opening ${N} sessions from ${WORKERS} processes`)
    workers = await startWorkers(WORKERS)
    const skewMs = await clockSkew(workers, now)
    await sleep(SETTLE_MS)
    const rssBefore = rssBytes(stack.pid)
    const tokens = Array.from({ length: N }, (_, i) => org.tokens[i % users]!)
    const { open, seconds } = await openAll(
      workers,
      (mine) => ({
        cmd: "open",
        kind: "ours",
        url: stack.base,
        wsUrl: stack.wsUrl,
        organizationId: org.organizationId,
        tokens: mine,
        concurrency: OPEN_CONCURRENCY / workers.length
      }),
      tokens
    )
    await sleep(SETTLE_MS)
    const rssWith = rssBytes(stack.pid)
    const live = await metrics(stack.wsBase)
    if (live.live_sessions !== N) throw new Error(`the server reports ${live.live_sessions} live sessions, not ${N}`)
    const t = summary(open.ticketMs)
    const o = summary(open.openMs)
    say(
      `ours: ${N} sessions open in ${seconds.toFixed(1)} s (ticket p50 ${fmtMs(t.p50)} ms, p99 ${fmtMs(t.p99)} ms; ` +
        `ticket to hello p50 ${fmtMs(o.p50)} ms, p99 ${fmtMs(o.p99)} ms); RSS ${mib(rssBefore)} → ${mib(rssWith)} MiB; ` +
        `${open.reopened} dropped by the server right after the upgrade and reopened`
    )
    const logPhases: Array<string> = []
    let logsBefore = new Map<string, number>()
    const logPhase = (phase: string) => {
      const current = new Map(stack.logCounts())
      const lines = logLines(
        new Map([...current].map(([key, count]) => [key, count - (logsBefore.get(key) ?? 0)])),
        stack.logCauses()
      )
      logPhases.push(`${phase}: ${lines.length === 0 ? "no warnings or errors" : `\n${lines.join("\n")}`}`)
      logsBefore = current
    }
    logPhase("setup and opening the sessions")
    const rounds: Array<Round> = []
    const path = `/v1/orgs/${org.organizationId}/roles/${org.roleId}/grants`
    const services = stack.servicePids()
    for (let r = 1; r <= ROUNDS; r++) {
      const adding = r % 2 === 1
      const round = await fanOut(
        workers,
        stack.pid,
        r,
        async () => {
          const answer = await call<{ revision: string }>(stack.base, "PUT", path, org.ownerToken, {
            grants: [
              { permission: "docs:read", effect: "allow" },
              ...(adding ? [{ permission: "docs:write", effect: "allow" }] : [])
            ]
          })
          return {
            answeredAt: now(),
            expect: {
              kind: "permissions",
              revision: answer.revision,
              added: adding ? ["docs:write"] : [],
              removed: adding ? [] : ["docs:write"]
            }
          }
        },
        async () => {
          const m = await metrics(stack.wsBase)
          return {
            recomputations: m.live_recomputations_total ?? 0,
            loads: m.live_loads_total ?? 0,
            pushes: m.live_pushes_total ?? 0
          }
        },
        services
      )
      say(
        `ours round ${r}: ${round.received}/${N} correct, p50 ${fmtMs(round.fromSend.p50)} ms, ` +
          `p99 ${fmtMs(round.fromSend.p99)} ms, max ${fmtMs(round.fromSend.max)} ms`
      )
      rounds.push(round)
      await sleep(1_000)
      logPhase(`round ${r}`)
    }
    if (!isRunning(stack.server.child)) throw new Error(`the server exited:\n${stack.server.output()}`)
    const status = mergeStatus(await all<StatusReport>(workers, () => ({ cmd: "status" })))
    await all(workers, () => ({ cmd: "close" }))
    return {
      name: "ours (uWS + session actors)",
      rounds,
      rssBefore,
      rssWith,
      open,
      openSeconds: seconds,
      status,
      notes: [
        `ours: opening ${num(N)} sessions (ticket, upgrade, hello; ${OPEN_CONCURRENCY} at once): ` +
          `${num(N / seconds)} sessions/s; ticket p50 ${fmtMs(t.p50)} ms, p99 ${fmtMs(t.p99)} ms; ` +
          `ticket request to hello p50 ${fmtMs(o.p50)} ms, p99 ${fmtMs(o.p99)} ms`,
        "ours: server log lines at WARN and above (LOG_LEVEL=warning), by phase:",
        ...logPhases
      ],
      frame: rounds[0]?.sample ?? "",
      setupSeconds: org.seconds,
      users,
      skewMs
    }
  } finally {
    await stopWorkers(workers)
    await stack.stop()
  }
}

/** A diff-shaped frame whose JSON is exactly `bytes` long. */
const messageOf = (bytes: number, round: number) => {
  const bare = JSON.stringify({ type: "fanout", round, pad: "" })
  return JSON.stringify({ type: "fanout", round, pad: "x".repeat(Math.max(0, bytes - bare.length)) })
}

const baseline = async (name: string, script: string, kind: "ws" | "socketio", bytes: number): Promise<Run> => {
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const server = startNode([script], { PORT: String(port), HOST: "127.0.0.1" })
  let workers: ReadonlyArray<Worker> = []
  try {
    const began = performance.now()
    while ((await probe(`${base}/stats`)) === undefined) {
      if (!isRunning(server.child)) throw new Error(`${name} exited during start:\n${server.output()}`)
      if (performance.now() - began > 30_000) throw new Error(`${name} not up after 30 s:\n${server.output()}`)
      await sleep(100)
    }
    workers = await startWorkers(WORKERS)
    await sleep(SETTLE_MS)
    const pid = server.child.pid!
    const rssBefore = rssBytes(pid)
    const { open, seconds } = await openAll(
      workers,
      (mine) => ({ cmd: "open", kind, url: base, tokens: mine, concurrency: OPEN_CONCURRENCY / workers.length }),
      Array.from({ length: N }, () => "")
    )
    await sleep(SETTLE_MS)
    const rssWith = rssBytes(pid)
    say(`${name}: ${N} clients open in ${seconds.toFixed(1)} s; RSS ${mib(rssBefore)} → ${mib(rssWith)} MiB`)
    const rounds: Array<Round> = []
    for (let r = 1; r <= ROUNDS; r++) {
      const text = messageOf(bytes, r)
      const round = await fanOut(workers, pid, r, async () => {
        const response = await fetch(`${base}/broadcast`, { method: "POST", body: text })
        const answer = (await response.json()) as { sent: number }
        if (answer.sent !== N) throw new Error(`${name} sent to ${answer.sent} clients, not ${N}`)
        return { answeredAt: undefined, expect: { kind: "text", text } }
      })
      say(
        `${name} round ${r}: ${round.received}/${N} correct, p50 ${fmtMs(round.fromSend.p50)} ms, ` +
          `p99 ${fmtMs(round.fromSend.p99)} ms, max ${fmtMs(round.fromSend.max)} ms`
      )
      rounds.push(round)
      await sleep(1_000)
    }
    const status = mergeStatus(await all<StatusReport>(workers, () => ({ cmd: "status" })))
    await all(workers, () => ({ cmd: "close" }))
    return { name, rounds, rssBefore, rssWith, open, openSeconds: seconds, status, notes: [] }
  } finally {
    await stopWorkers(workers)
    await stop(server)
  }
}

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor((sorted.length - 1) / 2)]!
}

const main = async () => {
  const began = performance.now()
  const loadBefore = loadAverage()
  const code = revision()
  const date = new Date().toISOString()
  if (N > 19_000) {
    console.error("BENCH_SESSIONS above 19,000 does not fit: every process here holds at most 20,000 files")
    process.exit(2)
  }
  const mine = await ours()
  const bytes = Buffer.byteLength(mine.frame)
  if (bytes === 0) throw new Error("no diff frame was received, nothing to compare")
  const ws = await baseline("ws 8", "bench/servers/ws-fanout.ts", "ws", bytes)
  const sio = await baseline("Socket.IO 4", "bench/servers/socketio-fanout.ts", "socketio", bytes)
  const runs = [mine, ws, sio]

  const rows = runs.flatMap((run) =>
    run.rounds.map((r) => [
      `${run.name}, round ${r.round}`,
      fmtMs(r.fromSend.p50),
      fmtMs(r.fromSend.p99),
      fmtMs(r.fromSend.max),
      r.fromAnswer === undefined
        ? "—"
        : `${fmtMs(r.fromAnswer.p50)} / ${fmtMs(r.fromAnswer.p99)} / ${fmtMs(r.fromAnswer.max)}`,
      `${num(r.received)} / ${num(r.missing)} / ${num(r.incorrect)} / ${num(r.extra)}`,
      r.recomputations === undefined ? "—" : `${num(r.recomputations)} / ${num(r.loads ?? 0)} / ${num(r.pushes ?? 0)}`,
      num(r.serverCpuMs),
      num((r.serverCpuMs * 1000) / N, 1),
      num((100 * r.serverCpuMs) / r.wallMs),
      num((100 * r.workersCpuMs) / r.wallMs),
      r.postgresCpuMs === undefined ? "—" : `${num(r.postgresCpuMs)} / ${num(r.redisCpuMs ?? 0)}`,
      num((100 * r.machineBusyMs) / r.wallMs)
    ])
  )
  const memory = runs.map((run) => [
    run.name,
    num(run.open.opened),
    num(run.openSeconds, 1),
    mib(run.rssBefore),
    mib(run.rssWith),
    num((run.rssWith - run.rssBefore) / N / 1024, 1),
    `${num(run.status.open)}`,
    Object.keys(run.status.unexpectedCloses).length === 0 ? "none" : JSON.stringify(run.status.unexpectedCloses)
  ])
  const med = (run: Run, pick: (r: Round) => number) => median(run.rounds.map(pick))
  const perSession = (run: Run) => (run.rssWith - run.rssBefore) / N
  const ratio = (other: Run) =>
    `ours / ${other.name}: p50 ${(med(mine, (r) => r.fromSend.p50) / med(other, (r) => r.fromSend.p50)).toFixed(1)}×, ` +
    `p99 ${(med(mine, (r) => r.fromSend.p99) / med(other, (r) => r.fromSend.p99)).toFixed(1)}×, ` +
    `max ${(med(mine, (r) => r.fromSend.max) / med(other, (r) => r.fromSend.max)).toFixed(1)}×, ` +
    `server CPU per fan-out ${(
      med(mine, (r) => r.serverCpuMs) /
        Math.max(
          1,
          med(other, (r) => r.serverCpuMs)
        )
    ).toFixed(1)}×, ` +
    `RSS per connection ${(perSession(mine) / perSession(other)).toFixed(1)}×`
  const cores = availableParallelism() * 100
  const bound = (run: Run) => {
    const share = (pick: (r: Round) => number) => med(run, (r) => (100 * pick(r)) / r.wallMs)
    const server = share((r) => r.serverCpuMs)
    const clients = share((r) => r.workersCpuMs)
    const services = share((r) => (r.postgresCpuMs ?? 0) + (r.redisCpuMs ?? 0))
    const machine = share((r) => r.machineBusyMs)
    const other = Math.max(0, machine - server - clients - services)
    const verdict =
      server >= 90
        ? "the server is CPU-bound (its one JavaScript thread is busy)"
        : machine >= 0.85 * cores
          ? "the machine is saturated: server and clients compete for the 2 cores"
          : "nothing is CPU-bound"
    return (
      `${run.name}: server ${num(server)}%, client processes ${num(clients)}%` +
      (run.rounds[0]?.postgresCpuMs === undefined ? "" : `, Postgres + Redis ${num(services)}%`) +
      `, everything else on the machine ${num(other)}%; machine ${num(machine)}% of ${cores}% → ${verdict}`
    )
  }
  console.log(
    [
      "",
      `bench:push — ${date}`,
      `machine: ${cpuModel()}, ${availableParallelism()} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; ` +
        `load average ${loadBefore} before, ${loadAverage()} after`,
      `versions: effect ${version("effect")}, uWebSockets.js (${version("uWebSockets.js")}), ws ${version("ws")}, ` +
        `socket.io ${version("socket.io")}, socket.io-client ${version("socket.io-client")}`,
      `ours: ${OUR_SERVER_LABEL} at ${code}, one node, Postgres ${process.env.BENCH_DATABASE_URL ? "(given)" : "(throwaway, fsync off)"}, ` +
        `Redis ${process.env.BENCH_REDIS_URL ? "(given)" : "(throwaway)"}, LOG_LEVEL=warning, MAX_SOCKETS_PER_USER=${PER_USER}`,
      `sessions: ${num(N)} = ${num(mine.users)} members × ${PER_USER} (set up through the API in ${mine.setupSeconds.toFixed(0)} s), ` +
        `all holding the role reader; one ticket per session`,
      `clients: ${WORKERS} processes on 127.0.0.2–127.0.0.${1 + WORKERS}, ${OPEN_CONCURRENCY} opening at once; ` +
        `clock skew between processes ≤ ${mine.skewMs.toFixed(2)} ms`,
      `change: PUT /v1/orgs/{org}/roles/reader/grants, adding docs:write (odd rounds) or removing it (even rounds); ` +
        `diff frame ${bytes} bytes, e.g. ${mine.frame}`,
      `baselines: POST /broadcast of a ${bytes}-byte JSON text; ws sends it as is, Socket.IO wraps it as 42["permissions",…]`,
      "latency: from t− (the PUT or POST /broadcast being sent) to each client's arrival; for ours also from t0 (the PUT's answer arriving)",
      `CPU: utime+stime from /proc over t− … last arrival (${(1000 / CLK_TCK).toFixed(0)} ms ticks); 100% = one core; machine = all processes, both cores`,
      "",
      grid(
        [
          "fan-out",
          "p50 ms",
          "p99 ms",
          "max ms",
          "from t0: p50 / p99 / max",
          "right / missing / wrong / extra",
          "recomputed / loaded / pushed",
          "server CPU ms",
          "µs/session",
          "server CPU %",
          "clients CPU %",
          "Postgres / Redis CPU ms",
          "machine %"
        ],
        rows
      ),
      "",
      grid(
        [
          "server",
          "connections",
          "opened in s",
          "RSS before MiB",
          "RSS with MiB",
          "KiB/connection",
          "still open",
          "unexpected closes"
        ],
        memory
      ),
      "",
      "ratios (medians over rounds):",
      ratio(ws),
      ratio(sio),
      "",
      "CPU during the fan-out (median over rounds):",
      ...runs.map(bound),
      ...runs.flatMap((run) =>
        run.rounds.flatMap((r) =>
          r.samples.length > 0 ? [`${run.name} round ${r.round} wrong frames, e.g. ${r.samples.join(" | ")}`] : []
        )
      ),
      ...runs.flatMap((run) => run.notes),
      "",
      `total ${((performance.now() - began) / 1000).toFixed(0)} s`
    ].join("\n")
  )
}

runBench(main)
