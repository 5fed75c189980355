/**
 * The instruments of bench:freshness (bench/freshness.ts): the pacing every measured run shares, a
 * keep-alive HTTP client and a WebSocket client in the bench process timed at the edges, the taps on
 * our servers (a LISTEN on `outbox_committed`, a blocked XREAD on the permission event stream, and
 * the Postgres and Redis counters), and the two baselines run the same number of times with the same
 * pauses: a Redis XADD waking a blocked XREAD, and a plain `ws` server (bench/live/ws-one.ts) sending
 * one frame to one of N clients.
 */
import { Agent, request } from "node:http"
import { setTimeout as sleep } from "node:timers/promises"
import { Redis } from "ioredis"
import pg from "pg"
import WebSocket from "ws"
import { LiveLimits } from "../../src/rpc/LiveProtocol.ts"
import { PERMISSION_EVENTS_STREAM } from "../../src/services/Outbox.ts"
import { freePort, isRunning, probe as probeUrl, startNode, stop } from "../harness.ts"
import type { CollectReport, Command, OpenReport } from "./clients.ts"
import {
  all,
  deal,
  mergeCollect,
  mergeOpen,
  now,
  percentile,
  startWorkers,
  stopWorkers,
  summary,
  type Worker
} from "./workers.ts"

/** The run's size (BENCH_* variables, read in bench/freshness.ts). */
export interface Plan {
  /** N: the live sessions besides the probes. */
  readonly sessions: number
  readonly changes: number
  readonly warmup: number
  readonly probes: number
  readonly perUser: number
  readonly workers: number
}

export const PAUSE_MS = { min: 20, max: 60 }
export const OPEN_CONCURRENCY = 64
export const SETTLE_MS = 3_000
export const FRAME_TIMEOUT_MS = 5_000
/** A probe is changed again only this long after its last frame (its last recomputation began before it). */
export const REVISIT_MS = LiveLimits.recomputeEveryMs + 5

export const pause = () => sleep(PAUSE_MS.min + Math.random() * (PAUSE_MS.max - PAUSE_MS.min))

export const stats = (values: ReadonlyArray<number>) => ({
  ...summary(values),
  n: values.length,
  p90: percentile(values, 90),
  min: values.length === 0 ? Number.NaN : Math.min(...values)
})
export type Stats = ReturnType<typeof stats>

/** What a blocked XREAD on one stream answers. */
type StreamReply = Array<[string, Array<[string, Array<string>]>]> | null

/** Opens `tokens.length` sessions from the client processes, dealt round-robin. */
export const openSessions = async (
  workers: ReadonlyArray<Worker>,
  target: Pick<Extract<Command, { cmd: "open" }>, "kind" | "url" | "wsUrl" | "organizationId">,
  tokens: ReadonlyArray<string>
) => {
  const dealt = deal(tokens, workers.length)
  return mergeOpen(
    await all<OpenReport>(workers, (_, i) => ({
      cmd: "open",
      ...target,
      tokens: dealt[i]!,
      concurrency: OPEN_CONCURRENCY / workers.length
    }))
  )
}

// --- one keep-alive HTTP connection for the writes, timed at the edges -------------------------------

const agent = new Agent({ keepAlive: true, maxSockets: 1 })

export interface Answer {
  /** Just before the request was handed to the socket. */
  readonly sentAt: number
  /** When the answer's head arrived. */
  readonly answeredAt: number
  readonly status: number
  readonly text: string
}

export const send = (url: string, method: string, token: string | undefined, body?: string) =>
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

export interface Frame {
  readonly at: number
  readonly text: string
}

export interface Listener {
  readonly frames: Array<Frame>
  notify: (() => void) | undefined
  closed: string | undefined
}

/** Opens `url`; with `firstIsHello`, the socket counts as open once its first frame (a hello) arrived. */
export const connect = (url: string, firstIsHello: boolean) =>
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
export const waitFor = (listener: Listener, from: number, pick: (frame: Frame) => boolean, timeoutMs: number) =>
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

export const parse = (text: string): Record<string, unknown> | undefined => {
  try {
    const value = JSON.parse(text) as unknown
    return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

/** The same keys with the same values (JSON), whatever the key order. */
export const sameFrame = (actual: Record<string, unknown>, expected: Record<string, unknown>) => {
  const keys = Object.keys(expected).sort()
  const got = Object.keys(actual).sort()
  return (
    keys.length === got.length &&
    keys.every((key, i) => key === got[i] && JSON.stringify(actual[key]) === JSON.stringify(expected[key]))
  )
}

// --- the taps on our servers ----------------------------------------------------------------------------

export interface Taps {
  /** When each `outbox_committed` notification arrived. */
  readonly commits: ReadonlyArray<number>
  /** By revision: when the tap's blocked XREAD first returned the organization's event. */
  readonly streamed: ReadonlyMap<string, number>
  /** Connects both taps (commit: NOTIFY, stream: XREAD), both in this process. */
  readonly start: (prefix: string, organizationId: string) => Promise<void>
  /** Postgres transactions so far (a statement outside one counts as one). */
  readonly pgTransactions: () => Promise<number>
  /** Redis commands processed so far. */
  readonly redisCommands: () => Promise<number>
  readonly stop: () => Promise<void>
}

export const createTaps = (databaseUrl: string, redisUrl: string): Taps => {
  const listen = new pg.Client({ connectionString: databaseUrl })
  const tap = new Redis(redisUrl, { lazyConnect: true })
  const tapInfo = new Redis(redisUrl, { lazyConnect: true })
  const commits: Array<number> = []
  const streamed = new Map<string, number>()
  let tapping = true
  let tapped: Promise<void> | undefined
  return {
    commits,
    streamed,
    start: async (prefix, organizationId) => {
      await listen.connect()
      listen.on("notification", (message) => {
        if (message.channel === "outbox_committed") commits.push(now())
      })
      await listen.query("LISTEN outbox_committed")
      await tap.connect()
      await tapInfo.connect()
      const key = `${prefix}${PERMISSION_EVENTS_STREAM}`
      let cursor = (await tap.xrevrange(key, "+", "-", "COUNT", 1))[0]?.[0] ?? "0-0"
      tapped = (async () => {
        while (tapping) {
          const reply = (await tap.xread("BLOCK", 0, "STREAMS", key, cursor).catch(() => null)) as StreamReply
          const at = now()
          if (reply === null && tapping) await sleep(10)
          for (const [id, fields] of reply?.[0]?.[1] ?? []) {
            cursor = id
            const event = parse(fields[fields.indexOf("p") + 1] ?? "")
            if (event?.organizationId === organizationId && typeof event.revision === "string") {
              if (!streamed.has(event.revision)) streamed.set(event.revision, at)
            }
          }
        }
      })()
    },
    pgTransactions: async () =>
      Number(
        (
          await listen.query(
            "SELECT sum(xact_commit + xact_rollback)::bigint AS n FROM pg_stat_database WHERE datname = current_database()"
          )
        ).rows[0]?.n ?? 0
      ),
    redisCommands: async () => {
      const info = await tapInfo.info("stats")
      return Number(/total_commands_processed:(\d+)/.exec(info)?.[1] ?? 0)
    },
    stop: async () => {
      tapping = false
      tap.disconnect()
      tapInfo.disconnect()
      await tapped
      await listen.end().catch(() => undefined)
    }
  }
}

// --- the baselines --------------------------------------------------------------------------------------

export const redisBaseline = async (plan: Plan, redisUrl: string, prefix: string, bytes: number) => {
  const reader = new Redis(redisUrl, { lazyConnect: true })
  const writer = new Redis(redisUrl, { lazyConnect: true })
  await reader.connect()
  await writer.connect()
  try {
    const key = `${prefix}freshness-baseline`
    const payload = "x".repeat(bytes)
    let cursor = "0-0"
    const latencies: Array<number> = []
    for (let i = 0; i < plan.warmup + plan.changes; i++) {
      const woken = reader
        .xread("BLOCK", 0, "STREAMS", key, cursor)
        .then((reply) => ({ at: now(), reply: reply as StreamReply }))
      await pause()
      const sentAt = now()
      const id = await writer.xadd(key, "*", "p", payload)
      const { at, reply } = await woken
      const entry = reply?.[0]?.[1][0]
      if (entry === undefined || entry[0] !== id || entry[1][1] !== payload) {
        throw new Error(`baseline: the XREAD returned ${JSON.stringify(reply)?.slice(0, 200)}, not entry ${id}`)
      }
      cursor = id!
      if (i >= plan.warmup) latencies.push(at - sentAt)
    }
    await writer.del(key)
    return stats(latencies)
  } finally {
    reader.disconnect()
    writer.disconnect()
  }
}

export const wsBaseline = async (plan: Plan, bytes: number) => {
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
    workers = await startWorkers(plan.workers)
    const N = plan.sessions
    const open = await openSessions(
      workers,
      { kind: "ws", url: base },
      Array.from({ length: N }, () => "")
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
    for (let i = 0; i < plan.warmup + plan.changes; i++) {
      await pause()
      const text = JSON.stringify({ type: "permissions", i, pad: "x".repeat(Math.max(0, bytes - bare.length)) })
      const from = listener.frames.length
      const answer = await send(`${base}/send`, "POST", undefined, text)
      if (answer.text !== '{"sent":1}') throw new Error(`ws-one answered ${answer.text}`)
      const frame = await waitFor(listener, from, (f) => f.text === text, FRAME_TIMEOUT_MS)
      if (frame === undefined) missing += 1
      else if (i >= plan.warmup) {
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
export type WsBaseline = Awaited<ReturnType<typeof wsBaseline>>
