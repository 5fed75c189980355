/**
 * bench:freshness — how soon one change reaches the one session it concerns, on an idle node that
 * holds N other live sessions (issue #11: p99 ≤ 20 ms from the write's answer to the frame, on real
 * Postgres and Redis), beside baselines measured in the same run.
 *
 * Ours: one server process (dist/src/main.js, built first) on throwaway Postgres and Redis (or BENCH_DATABASE_URL /
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
import { setTimeout as sleep } from "node:timers/promises"
import type WebSocket from "ws"
import { type PostgresServer, type RedisServer, startPostgres, startRedis } from "../test/support/Servers.ts"
import { revision as gitRevision, isRunning, loadAverage, positiveInt, runBench } from "./harness.ts"
import type { CollectReport, StatusReport } from "./live/clients.ts"
import { type Change, cpuWindow, failuresOf, type Ours, report } from "./live/freshnessReport.ts"
import {
  connect,
  createTaps,
  FRAME_TIMEOUT_MS,
  type Listener,
  openSessions,
  type Plan,
  parse,
  pause,
  REVISIT_MS,
  redisBaseline,
  SETTLE_MS,
  sameFrame,
  send,
  waitFor,
  wsBaseline
} from "./live/freshnessTaps.ts"
import { buildOrganization, call, logLines, metrics, type Stack, startStack } from "./live/stack.ts"
import {
  all,
  mergeCollect,
  mergeStatus,
  now,
  processTree,
  startWorkers,
  stopWorkers,
  type Worker
} from "./live/workers.ts"

const N = positiveInt("BENCH_SESSIONS", 10_000)
const CHANGES = positiveInt("BENCH_CHANGES", 200)
const WARMUP = Number(process.env.BENCH_WARMUP ?? 10)
const PROBES = positiveInt("BENCH_PROBES", 4)
const PER_USER = positiveInt("BENCH_SOCKETS_PER_USER", 50)
const WORKERS = positiveInt("BENCH_WORKERS", Math.max(4, Math.ceil(N / 4_750)))
const plan: Plan = {
  sessions: N,
  changes: CHANGES,
  warmup: WARMUP,
  probes: PROBES,
  perUser: PER_USER,
  workers: WORKERS
}

const say = (text: string) => process.stderr.write(`${text}\n`)

// --- ours -------------------------------------------------------------------------------------------------

interface Probe {
  readonly userId: string
  readonly token: string
  readonly listener: Listener
  readonly socket: WebSocket
  assignmentId: string | undefined
  lastFrameAt: number
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

const ours = async (redisUrl: string, databaseUrl: string): Promise<Ours> => {
  const pgPort = new URL(databaseUrl).port
  const redisPort = new URL(redisUrl).port
  const prefix = `bench:freshness:${Date.now()}:`
  const users = Math.ceil(N / PER_USER)
  const stack = await startStack({ MAX_SOCKETS_PER_USER: String(PER_USER), REDIS_KEY_PREFIX: prefix })
  let workers: ReadonlyArray<Worker> = []
  const probes: Array<Probe> = []
  const taps = createTaps(databaseUrl, redisUrl)
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
    const open = await openSessions(
      workers,
      { kind: "ours", url: stack.base, wsUrl: stack.wsUrl, organizationId: org.organizationId },
      tokens
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
    await taps.start(prefix, org.organizationId)

    await all(workers, () => ({ cmd: "arm" }))
    // Statements and commands per change: Postgres transactions (a statement outside one counts as one) and Redis commands.
    const pg0 = await taps.pgTransactions()
    const redis0 = await taps.redisCommands()
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
    const redis1 = await taps.redisCommands()
    await sleep(1_500) // Postgres publishes its statistics about once a second
    const pg1 = await taps.pgTransactions()
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
      change.committedAt = taps.commits.find((t) => t >= change.sentAt)
      change.streamedAt = taps.streamed.get(change.revision)
    }
    const sample = probes[0]!.listener.frames[0]?.text ?? ""

    say("baseline: Redis XADD → blocked XREAD")
    const redis = await redisBaseline(plan, redisUrl, prefix, Buffer.byteLength(sample))
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
    await taps.stop()
    for (const probe of probes) probe.socket.terminate()
    if (workers.length > 0) await all(workers, () => ({ cmd: "close" })).catch(() => undefined)
    await stopWorkers(workers)
    await stack.stop()
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
  const ws = await wsBaseline(plan, mine.frameBytes)

  const failures = failuresOf(mine)
  console.log(report({ plan, startedAt, loadBefore, code, date, givenPg, givenRedis }, mine, ws))
  if (failures > 0) {
    console.error(`bench:freshness: ${failures} frames wrong, missing, duplicated or misdelivered`)
    process.exit(1)
  }
}

runBench(main)
