/**
 * bench:freshness — how soon one change reaches the one session it concerns, on an idle node that
 * holds N other live sessions (issue #11: p99 ≤ 20 ms from the write's answer to the frame, on real
 * Postgres and Redis), beside baselines measured in the same run.
 *
 * Ours: one server process (src/main.ts) on throwaway Postgres and Redis (or BENCH_DATABASE_URL /
 * BENCH_REDIS_URL). An organization is built through the API (bench/live/stack.ts): members holding
 * the role `reader` (docs:read) with BENCH_SOCKETS_PER_USER live sessions each, N = BENCH_SESSIONS
 * sessions in all, opened from BENCH_WORKERS client processes (bench/live/clients.ts); plus
 * BENCH_PROBES probe members with one session each, opened here, and a role `writer` (docs:write).
 *
 * BENCH_WARMUP + BENCH_CHANGES times, one after another, after a random pause of 20–60 ms (the node
 * is idle in between), the owner gives `writer` to the next probe (POST …/assignments) or takes it
 * away again (DELETE …/assignments/{id}): a write that touches one user. The probe's session must
 * get exactly `{type: "permissions", revision: <the write's>, added, removed, roles}`; frames that
 * differ, are missing, come twice, or reach any other session are counted, and any of them fails the
 * run. The probes take turns so that no session is changed twice within `recomputeEveryMs` (a
 * session recomputes at most that often: the second change would wait for the interval, which is
 * pacing, not freshness); should a probe come round sooner, the bench waits.
 *
 * Latency is measured in this process (one clock) from t0, when the write's answer arrives (the
 * commit happened before it), and from t−, just before the write is sent. Where the time goes is read
 * off two taps on the same servers: a LISTEN on `outbox_committed` (Postgres notifies it at the
 * commit of every outbox insert) and a blocked XREAD on the permission event stream (when the
 * relay's XADD is visible to a reader), and from the server's counters (GET /metrics on WS_PORT).
 *
 * Baselines, the same number of times with the same pauses:
 *  - Redis: an XADD on one connection waking a blocked XREAD on another (same Redis, ioredis), from
 *    the XADD being sent to the XREAD's answer; measured while our node still holds its sessions.
 *  - ws 8: a plain `ws` server (bench/live/ws-one.ts) holding N clients from the same client
 *    processes plus one probe here, sending one frame of our diff's size to the probe on
 *    `POST /send`, from the POST being sent to the frame.
 *
 *   yarn bench:freshness                      # N = 10,000, 200 changes
 *   BENCH_SESSIONS=2000 yarn bench:freshness
 */
import { Agent, request } from "node:http"
import { availableParallelism, totalmem } from "node:os"
import { setTimeout as sleep } from "node:timers/promises"
import { Redis } from "ioredis"
import pg from "pg"
import WebSocket from "ws"
import { LiveLimits } from "../src/rpc/LiveProtocol.ts"
import { PERMISSION_EVENTS_STREAM } from "../src/services/Outbox.ts"
import { type PostgresServer, type RedisServer, startPostgres, startRedis } from "../test/support/Servers.ts"
import {
  CLK_TCK,
  cpuModel,
  cpuUs,
  freePort,
  isRunning,
  loadAverage,
  num,
  positiveInt,
  probe as probeUrl,
  revision as gitRevision,
  runBench,
  startNode,
  stop,
  version
} from "./harness.ts"
import type { CollectReport, OpenReport, StatusReport } from "./live/clients.ts"
import { buildOrganization, call, logLines, metrics, type Stack, startStack } from "./live/stack.ts"
import {
  all,
  deal,
  fmtMs,
  grid,
  machineCpu,
  mergeCollect,
  mergeOpen,
  mergeStatus,
  now,
  percentile,
  processTree,
  startWorkers,
  stopWorkers,
  treeCpu,
  treeCpuSinceMs,
  type Worker
} from "./live/workers.ts"

const N = positiveInt("BENCH_SESSIONS", 10_000)
const CHANGES = positiveInt("BENCH_CHANGES", 200)
const WARMUP = Number(process.env.BENCH_WARMUP ?? 10)
const PROBES = positiveInt("BENCH_PROBES", 4)
const PER_USER = positiveInt("BENCH_SOCKETS_PER_USER", 50)
const WORKERS = positiveInt("BENCH_WORKERS", Math.max(4, Math.ceil(N / 4_750)))
const PAUSE_MS = { min: 20, max: 60 }
const OPEN_CONCURRENCY = 64
const SETTLE_MS = 3_000
const FRAME_TIMEOUT_MS = 5_000
/** A probe is changed again only this long after its last frame (its last recomputation began before it). */
const REVISIT_MS = LiveLimits.recomputeEveryMs + 5
const TARGET_P99_MS = 20

const say = (text: string) => process.stderr.write(`${text}\n`)
const pause = () => sleep(PAUSE_MS.min + Math.random() * (PAUSE_MS.max - PAUSE_MS.min))
const cpuMs = (pid: number) => {
  const { user, sys } = cpuUs(pid)
  return (user + sys) / 1000
}

/** CPU (ms) of each party over a window, and of the whole machine; `rest` is everything else running. */
const cpuWindow = (parties: {
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

// --- one keep-alive HTTP connection for the writes, timed at the edges -------------------------------

const agent = new Agent({ keepAlive: true, maxSockets: 1 })

interface Answer {
  /** Just before the request was handed to the socket. */
  readonly sentAt: number
  /** When the answer's head arrived. */
  readonly answeredAt: number
  readonly status: number
  readonly text: string
}

const send = (url: string, method: string, token: string | undefined, body?: string) =>
  new Promise<Answer>((resolve, reject) => {
    let sentAt = 0
    const headers: Record<string, string | number> = {}
    if (token !== undefined) headers.authorization = `Bearer ${token}`
    if (body !== undefined) {
      headers["content-type"] = "application/json"
      headers["content-length"] = Buffer.byteLength(body)
    }
    const req = request(url, { method, agent, headers }, (res) => {
      const answeredAt = now()
      let text = ""
      res.setEncoding("utf8")
      res.on("data", (chunk) => {
        text += chunk
      })
      res.on("end", () => resolve({ sentAt, answeredAt, status: res.statusCode ?? 0, text }))
    })
    req.on("error", reject)
    sentAt = now()
    req.end(body)
  })

// --- a WebSocket client in this process ---------------------------------------------------------------

interface Frame {
  readonly at: number
  readonly text: string
}

interface Listener {
  readonly frames: Array<Frame>
  notify: (() => void) | undefined
  closed: string | undefined
}

/** Opens `url`; with `firstIsHello`, the socket counts as open once its first frame (a hello) arrived. */
const connect = (url: string, firstIsHello: boolean) =>
  new Promise<{ socket: WebSocket; listener: Listener; hello: string | undefined }>((resolve, reject) => {
    const socket = new WebSocket(url, { perMessageDeflate: false })
    const listener: Listener = { frames: [], notify: undefined, closed: undefined }
    let open = false
    const opened = (hello: string | undefined) => {
      open = true
      resolve({ socket, listener, hello })
    }
    socket.on("message", (data) => {
      const at = now()
      const text = data.toString()
      if (!open) {
        if (text.startsWith('{"type":"hello"')) opened(text)
        else reject(new Error(`first frame ${text.slice(0, 120)}`))
        return
      }
      listener.frames.push({ at, text })
      listener.notify?.()
    })
    if (!firstIsHello) socket.once("open", () => opened(undefined))
    socket.once("unexpected-response", (_req, res) => {
      reject(new Error(`upgrade ${res.statusCode}`))
      socket.terminate()
    })
    socket.on("error", (error: NodeJS.ErrnoException) => reject(new Error(`socket ${error.code ?? error.message}`)))
    socket.on("close", (code) => {
      listener.closed = `close ${code}`
      reject(new Error(`closed ${code}${open ? "" : " before ready"}`))
      listener.notify?.()
    })
  })

/** The first frame from `from` on that `pick` accepts, or undefined after the timeout or a close. */
const waitFor = (listener: Listener, from: number, pick: (frame: Frame) => boolean, timeoutMs: number) =>
  new Promise<Frame | undefined>((resolve) => {
    const check = () => {
      for (let i = from; i < listener.frames.length; i++) if (pick(listener.frames[i]!)) return listener.frames[i]
      return undefined
    }
    const found = check()
    if (found !== undefined || listener.closed !== undefined) return resolve(found)
    const timer = setTimeout(() => {
      listener.notify = undefined
      resolve(undefined)
    }, timeoutMs)
    listener.notify = () => {
      const frame = check()
      if (frame === undefined && listener.closed === undefined) return
      clearTimeout(timer)
      listener.notify = undefined
      resolve(frame)
    }
  })

const parse = (text: string): Record<string, unknown> | undefined => {
  try {
    const value = JSON.parse(text) as unknown
    return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

/** The same keys with the same values (JSON), whatever the key order. */
const sameFrame = (actual: Record<string, unknown>, expected: Record<string, unknown>) => {
  const keys = Object.keys(expected).sort()
  const got = Object.keys(actual).sort()
  return (
    keys.length === got.length &&
    keys.every((key, i) => key === got[i] && JSON.stringify(actual[key]) === JSON.stringify(expected[key]))
  )
}

// --- figures --------------------------------------------------------------------------------------------

const stats = (values: ReadonlyArray<number>) => ({
  n: values.length,
  p50: percentile(values, 50),
  p90: percentile(values, 90),
  p99: percentile(values, 99),
  max: values.length === 0 ? Number.NaN : Math.max(...values),
  min: values.length === 0 ? Number.NaN : Math.min(...values)
})
type Stats = ReturnType<typeof stats>

const fmt = (n: number) => (Number.isNaN(n) ? "—" : n < 0 ? `−${fmtMs(-n)}` : fmtMs(n))
const row = (name: string, s: Stats) => [name, num(s.n), fmt(s.min), fmt(s.p50), fmt(s.p90), fmt(s.p99), fmt(s.max)]
const HEADER = ["from → to", "n", "min ms", "p50 ms", "p90 ms", "p99 ms", "max ms"]

// --- ours -------------------------------------------------------------------------------------------------

interface Probe {
  readonly userId: string
  readonly token: string
  readonly listener: Listener
  readonly socket: WebSocket
  assignmentId: string | undefined
  lastFrameAt: number
}

interface Change {
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

interface Ours {
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

/** Opens a probe's session (a fresh ticket each attempt; the pinned uWS may drop one right after the upgrade). */
const openProbe = async (stack: Stack, organizationId: string, token: string) => {
  for (let attempt = 1; ; attempt++) {
    const { ticket } = await call<{ ticket: string }>(stack.base, "POST", "/v1/realtime/tickets", token, {
      organizationId
    })
    try {
      return await connect(`${stack.wsUrl}?ticket=${ticket}`, true)
    } catch (error) {
      if (attempt === 3 || !(error as Error).message.startsWith("closed 1006")) throw error
    }
  }
}

const redisBaseline = async (redisUrl: string, prefix: string, bytes: number) => {
  const reader = new Redis(redisUrl, { lazyConnect: true })
  const writer = new Redis(redisUrl, { lazyConnect: true })
  await reader.connect()
  await writer.connect()
  try {
    const key = `${prefix}freshness-baseline`
    const payload = "x".repeat(bytes)
    let cursor = "0-0"
    const latencies: Array<number> = []
    for (let i = 0; i < WARMUP + CHANGES; i++) {
      const woken = reader
        .xread("BLOCK", 0, "STREAMS", key, cursor)
        .then((reply) => ({ at: now(), reply: reply as Array<[string, Array<[string, Array<string>]>]> | null }))
      await pause()
      const sentAt = now()
      const id = await writer.xadd(key, "*", "p", payload)
      const { at, reply } = await woken
      const entry = reply?.[0]?.[1][0]
      if (entry === undefined || entry[0] !== id || entry[1][1] !== payload) {
        throw new Error(`baseline: the XREAD returned ${JSON.stringify(reply)?.slice(0, 200)}, not entry ${id}`)
      }
      cursor = id!
      if (i >= WARMUP) latencies.push(at - sentAt)
    }
    await writer.del(key)
    return stats(latencies)
  } finally {
    reader.disconnect()
    writer.disconnect()
  }
}

const ours = async (redisUrl: string, databaseUrl: string): Promise<Ours> => {
  const pgPort = new URL(databaseUrl).port
  const redisPort = new URL(redisUrl).port
  const prefix = `bench:freshness:${Date.now()}:`
  const users = Math.ceil(N / PER_USER)
  const stack = await startStack({ MAX_SOCKETS_PER_USER: String(PER_USER), REDIS_KEY_PREFIX: prefix })
  let workers: ReadonlyArray<Worker> = []
  const probes: Array<Probe> = []
  const listen = new pg.Client({ connectionString: databaseUrl })
  const tap = new Redis(redisUrl, { lazyConnect: true })
  const tapInfo = new Redis(redisUrl, { lazyConnect: true })
  let tapping = true
  let tapped: Promise<void> | undefined
  try {
    const org = await buildOrganization(stack, users + PROBES)
    const path = `/v1/orgs/${org.organizationId}`
    const writer = await call<{ role: { id: string } }>(stack.base, "POST", `${path}/roles`, org.ownerToken, {
      name: "writer",
      grants: [{ permission: "docs:write", effect: "allow" }],
      parentIds: []
    })
    say(
      `ours: ${users + PROBES} members set up in ${org.seconds.toFixed(1)} s; opening ${N} sessions from ${WORKERS} processes`
    )
    workers = await startWorkers(WORKERS)
    const tokens = Array.from({ length: N }, (_, i) => org.tokens[i % users]!)
    const openedAt = now()
    const open = mergeOpen(
      await all<OpenReport>(workers, (_, i) => ({
        cmd: "open",
        kind: "ours",
        url: stack.base,
        wsUrl: stack.wsUrl,
        organizationId: org.organizationId,
        tokens: deal(tokens, workers.length)[i]!,
        concurrency: OPEN_CONCURRENCY / workers.length
      }))
    )
    const openSeconds = (now() - openedAt) / 1000
    if (open.failed > 0) throw new Error(`${open.failed} of ${N} sessions did not open: ${JSON.stringify(open.errors)}`)
    for (const token of org.tokens.slice(users)) {
      const me = await call<{ id: string }>(stack.base, "GET", "/v1/me", token)
      const { socket, listener } = await openProbe(stack, org.organizationId, token)
      probes.push({ userId: me.id, token, socket, listener, assignmentId: undefined, lastFrameAt: 0 })
    }
    say(`ours: ${N} sessions open in ${openSeconds.toFixed(1)} s, and ${PROBES} probe sessions`)
    await sleep(SETTLE_MS)
    const parties = {
      server: stack.pid,
      workers: workers.map((w) => w.pid),
      services: [
        ...processTree((cmd) => /(^|\/)postgres /.test(cmd) && cmd.includes(`-p ${pgPort} `)),
        ...processTree((cmd) => /(^|\/)redis-server /.test(cmd) && cmd.includes(`:${redisPort}`))
      ]
    }
    const idle = cpuWindow(parties)
    await sleep(SETTLE_MS)
    const idleCpu = idle()
    const live = await metrics(stack.wsBase)
    if (live.live_sessions !== N + PROBES) {
      throw new Error(`the server reports ${live.live_sessions} live sessions, not ${N + PROBES}`)
    }

    // The taps: commit (NOTIFY) and stream (XREAD), both in this process.
    const commits: Array<number> = []
    await listen.connect()
    listen.on("notification", (message) => {
      if (message.channel === "outbox_committed") commits.push(now())
    })
    await listen.query("LISTEN outbox_committed")
    const streamed = new Map<string, number>()
    await tap.connect()
    await tapInfo.connect()
    const key = `${prefix}${PERMISSION_EVENTS_STREAM}`
    let cursor = (await tap.xrevrange(key, "+", "-", "COUNT", 1))[0]?.[0] ?? "0-0"
    tapped = (async () => {
      while (tapping) {
        const reply = (await tap.xread("BLOCK", 0, "STREAMS", key, cursor).catch(() => null)) as Array<
          [string, Array<[string, Array<string>]>]
        > | null
        const at = now()
        if (reply === null && tapping) await sleep(10)
        for (const [id, fields] of reply?.[0]?.[1] ?? []) {
          cursor = id
          const event = parse(fields[fields.indexOf("p") + 1] ?? "")
          if (event?.organizationId === org.organizationId && typeof event.revision === "string") {
            if (!streamed.has(event.revision)) streamed.set(event.revision, at)
          }
        }
      }
    })()

    await all(workers, () => ({ cmd: "arm" }))
    // Statements and commands per change: Postgres transactions (a statement outside one counts as one) and Redis commands.
    const pgTransactions = async () =>
      Number(
        (
          await listen.query(
            "SELECT sum(xact_commit + xact_rollback)::bigint AS n FROM pg_stat_database WHERE datname = current_database()"
          )
        ).rows[0]?.n ?? 0
      )
    const redisCommands = async () => {
      const info = await tapInfo.info("stats")
      return Number(/total_commands_processed:(\d+)/.exec(info)?.[1] ?? 0)
    }
    const pg0 = await pgTransactions()
    const redis0 = await redisCommands()
    const before = await metrics(stack.wsBase)
    const cpu = cpuWindow(parties)
    const changes: Array<Change> = []
    let revisitWaits = 0
    say(`ours: ${WARMUP} + ${CHANGES} changes`)
    for (let i = 0; i < WARMUP + CHANGES; i++) {
      const p = i % PROBES
      const probe = probes[p]!
      await pause()
      const since = now() - probe.lastFrameAt
      if (since < REVISIT_MS) {
        revisitWaits += 1
        await sleep(REVISIT_MS - since)
      }
      const from = probe.listener.frames.length
      const adding = probe.assignmentId === undefined
      const answer = adding
        ? await send(
            `${stack.base}${path}/assignments`,
            "POST",
            org.ownerToken,
            JSON.stringify({ userId: probe.userId, roleId: writer.role.id })
          )
        : await send(`${stack.base}${path}/assignments/${probe.assignmentId}`, "DELETE", org.ownerToken)
      if (answer.status >= 300) throw new Error(`change ${i}: ${answer.status} ${answer.text}`)
      const body = JSON.parse(answer.text) as { revision: string; assignment?: { id: string } }
      probe.assignmentId = adding ? body.assignment?.id : undefined
      const change: Change = {
        index: i,
        probe: p,
        warmup: i < WARMUP,
        revision: body.revision,
        expected: {
          type: "permissions",
          revision: body.revision,
          added: adding ? ["docs:write"] : [],
          removed: adding ? [] : ["docs:write"],
          roles: adding ? ["reader", "writer"] : ["reader"]
        },
        sentAt: answer.sentAt,
        answeredAt: answer.answeredAt,
        committedAt: undefined,
        streamedAt: undefined,
        frameAt: undefined
      }
      changes.push(change)
      const frame = await waitFor(
        probe.listener,
        from,
        (f) => parse(f.text)?.revision === body.revision,
        FRAME_TIMEOUT_MS
      )
      if (probe.listener.closed !== undefined) throw new Error(`probe ${p}'s session closed: ${probe.listener.closed}`)
      probe.lastFrameAt = frame?.at ?? now()
    }
    const changeCpu = cpu()
    const redis1 = await redisCommands()
    await sleep(1_500) // Postgres publishes its statistics about once a second
    const pg1 = await pgTransactions()
    const after = await metrics(stack.wsBase)
    const others = mergeCollect(
      await all<CollectReport>(workers, () => ({
        cmd: "collect",
        expect: { kind: "text", text: "no frame is expected" },
        timeoutMs: 1
      }))
    )
    const status = mergeStatus(await all<StatusReport>(workers, () => ({ cmd: "status" })))

    // Every frame the probes got after their hello, matched to the changes by revision.
    const byRevision = new Map(changes.map((c) => [c.revision, c]))
    let right = 0
    let wrong = 0
    let duplicate = 0
    let stray = 0
    const wrongSamples: Array<string> = []
    probes.forEach((probe, p) => {
      for (const frame of probe.listener.frames) {
        const message = parse(frame.text)
        const change = typeof message?.revision === "string" ? byRevision.get(message.revision) : undefined
        if (change === undefined || change.probe !== p) {
          stray += 1
          if (wrongSamples.length < 3) wrongSamples.push(`probe ${p}: ${frame.text}`)
        } else if (!sameFrame(message!, change.expected)) {
          wrong += 1
          if (wrongSamples.length < 3) wrongSamples.push(`probe ${p}: ${frame.text}`)
        } else if (change.frameAt !== undefined) duplicate += 1
        else {
          change.frameAt = frame.at
          right += 1
        }
      }
    })
    const missing = changes.filter((c) => c.frameAt === undefined).length
    for (const change of changes) {
      change.committedAt = commits.find((t) => t >= change.sentAt)
      change.streamedAt = streamed.get(change.revision)
    }
    const sample = probes[0]!.listener.frames[0]?.text ?? ""

    say("baseline: Redis XADD → blocked XREAD")
    const redis = await redisBaseline(redisUrl, prefix, Buffer.byteLength(sample))
    const logs = logLines(stack.logCounts(), stack.logCauses())
    if (!isRunning(stack.server.child)) throw new Error(`the server exited:\n${stack.server.output()}`)
    return {
      changes,
      right,
      wrong,
      missing,
      duplicate,
      stray,
      wrongSamples,
      others: {
        got: others.arrivals.length + others.incorrect,
        samples: [...others.samples, ...(others.sample === undefined ? [] : [others.sample])].slice(0, 3),
        open: status.open
      },
      unexpectedCloses: status.unexpectedCloses,
      counters: {
        recomputations: (after.live_recomputations_total ?? 0) - (before.live_recomputations_total ?? 0),
        loads: (after.live_loads_total ?? 0) - (before.live_loads_total ?? 0),
        pushes: (after.live_pushes_total ?? 0) - (before.live_pushes_total ?? 0)
      },
      idleCpu,
      changeCpu,
      // less the bench's own: 2 statements of its own, and its info and the tap's XREAD per change
      pgPerChange: (pg1 - pg0 - 2) / (WARMUP + CHANGES),
      redisPerChange: (redis1 - redis0 - 1) / (WARMUP + CHANGES) - 1,
      revisitWaits,
      sample,
      setupSeconds: org.seconds,
      openSeconds,
      reopened: open.reopened,
      users,
      logs,
      redis,
      frameBytes: Buffer.byteLength(sample)
    }
  } finally {
    tapping = false
    tap.disconnect()
    tapInfo.disconnect()
    await tapped
    await listen.end().catch(() => undefined)
    for (const probe of probes) probe.socket.terminate()
    if (workers.length > 0) await all(workers, () => ({ cmd: "close" })).catch(() => undefined)
    await stopWorkers(workers)
    await stack.stop()
  }
}

// --- the ws baseline ----------------------------------------------------------------------------------

const wsBaseline = async (bytes: number) => {
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const server = startNode(["bench/live/ws-one.ts"], { PORT: String(port), HOST: "127.0.0.1" })
  let workers: ReadonlyArray<Worker> = []
  let probeSocket: WebSocket | undefined
  try {
    const began = performance.now()
    while ((await probeUrl(`${base}/stats`)) === undefined) {
      if (!isRunning(server.child)) throw new Error(`ws-one exited during start:\n${server.output()}`)
      if (performance.now() - began > 30_000) throw new Error(`ws-one not up after 30 s:\n${server.output()}`)
      await sleep(100)
    }
    workers = await startWorkers(WORKERS)
    const open = mergeOpen(
      await all<OpenReport>(workers, (_, i) => ({
        cmd: "open",
        kind: "ws",
        url: base,
        tokens: deal(
          Array.from({ length: N }, () => ""),
          workers.length
        )[i]!,
        concurrency: OPEN_CONCURRENCY / workers.length
      }))
    )
    if (open.failed > 0)
      throw new Error(`ws: ${open.failed} of ${N} clients did not open: ${JSON.stringify(open.errors)}`)
    const { socket, listener } = await connect(`ws://127.0.0.1:${port}/?probe=1`, false)
    probeSocket = socket
    await sleep(SETTLE_MS)
    await all(workers, () => ({ cmd: "arm" }))
    const bare = JSON.stringify({ type: "permissions", i: 0, pad: "" })
    const fromSend: Array<number> = []
    let missing = 0
    for (let i = 0; i < WARMUP + CHANGES; i++) {
      await pause()
      const text = JSON.stringify({ type: "permissions", i, pad: "x".repeat(Math.max(0, bytes - bare.length)) })
      const from = listener.frames.length
      const answer = await send(`${base}/send`, "POST", undefined, text)
      if (answer.text !== '{"sent":1}') throw new Error(`ws-one answered ${answer.text}`)
      const frame = await waitFor(listener, from, (f) => f.text === text, FRAME_TIMEOUT_MS)
      if (frame === undefined) missing += 1
      else if (i >= WARMUP) {
        fromSend.push(frame.at - answer.sentAt)
      }
    }
    const others = mergeCollect(
      await all<CollectReport>(workers, () => ({ cmd: "collect", expect: { kind: "text", text: "" }, timeoutMs: 1 }))
    )
    return {
      fromSend: stats(fromSend),
      missing,
      others: others.arrivals.length + others.incorrect,
      openN: open.opened
    }
  } finally {
    probeSocket?.terminate()
    await stopWorkers(workers)
    await stop(server)
  }
}

// --- main -------------------------------------------------------------------------------------------------

const main = async () => {
  const startedAt = performance.now()
  const loadBefore = loadAverage()
  // BENCH_REVISION names the code when it runs from a copy without git (e.g. `git archive HEAD`).
  const code = process.env.BENCH_REVISION ?? gitRevision()
  const date = new Date().toISOString()
  if (N + PROBES > 19_000) {
    console.error("BENCH_SESSIONS above 19,000 does not fit: every process here holds at most 20,000 files")
    process.exit(2)
  }
  // Postgres and Redis are started here (not by startStack) so the taps can reach them too.
  const givenPg = process.env.BENCH_DATABASE_URL
  const givenRedis = process.env.BENCH_REDIS_URL
  let postgres: PostgresServer | undefined
  let redisServer: RedisServer | undefined
  const stopServices = async () => {
    await redisServer?.stop()
    await postgres?.stop()
  }
  let mine: Ours
  try {
    postgres = givenPg ? undefined : await startPostgres()
    redisServer = givenRedis ? undefined : await startRedis()
    const databaseUrl = givenPg ?? postgres!.url
    const redisUrl = givenRedis ?? redisServer!.url
    process.env.BENCH_DATABASE_URL = databaseUrl
    process.env.BENCH_REDIS_URL = redisUrl
    mine = await ours(redisUrl, databaseUrl)
  } finally {
    await stopServices()
  }
  say("baseline: ws 8, one frame to one of N clients")
  const ws = await wsBaseline(mine.frameBytes)

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
  const failures = mine.wrong + mine.missing + mine.duplicate + mine.stray + mine.others.got
  const met = fromAnswer.p99 <= TARGET_P99_MS
  const perChange = (n: number) => (n / (WARMUP + CHANGES)).toFixed(2)
  console.log(
    [
      "",
      `bench:freshness — ${date}`,
      `machine: ${cpuModel()}, ${availableParallelism()} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; ` +
        `load average ${loadBefore} before, ${loadAverage()} after`,
      `versions: effect ${version("effect")}, uWebSockets.js (${version("uWebSockets.js")}), ioredis ${version("ioredis")}, ws ${version("ws")}`,
      `ours: node --import tsx src/main.ts at ${code}, one node, Postgres ${givenPg ? "(given)" : "(throwaway, fsync off)"}, ` +
        `Redis ${givenRedis ? "(given)" : "(throwaway)"}, LOG_LEVEL=warning, MAX_SOCKETS_PER_USER=${PER_USER}`,
      `sessions: ${num(N)} = ${num(mine.users)} members × ${PER_USER} (reader), from ${WORKERS} client processes ` +
        `(opened in ${mine.openSeconds.toFixed(0)} s; ${mine.reopened} dropped right after the upgrade and reopened), ` +
        `plus ${PROBES} probe members with one session each in the bench process; setup through the API in ${mine.setupSeconds.toFixed(0)} s`,
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
      `total ${((performance.now() - startedAt) / 1000).toFixed(0)} s`
    ].join("\n")
  )
  if (failures > 0) {
    console.error(`bench:freshness: ${failures} frames wrong, missing, duplicated or misdelivered`)
    process.exit(1)
  }
}

runBench(main)
