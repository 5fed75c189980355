/**
 * A load-generator process for bench:push and bench:sessions: it holds thousands of WebSocket
 * clients so the server under test never shares an event loop (or, on 2 cores, a core) with them.
 * It is driven over the IPC channel by the bench script (bench/live/workers.ts) and answers every
 * command with `{id, ...}`.
 *
 * Every client socket is bound to this process's own loopback source address (BENCH_LOCAL_ADDRESS,
 * 127.0.0.x) so that no single address runs out of ephemeral ports. Three kinds of client:
 *  - `ours`: for each session, `POST /v1/realtime/tickets` with the user's access token (over a small
 *    keep-alive pool, so the server's file descriptors go to the sockets), then the upgrade with
 *    the ticket; the session is open when `hello` arrives;
 *  - `ws`: a plain `ws` client to bench/servers/ws-fanout.ts, open on `open`;
 *  - `socketio`: a socket.io-client (websocket transport only) to bench/servers/socketio-fanout.ts,
 *    open on `connect`.
 *
 * Times are wall-clock milliseconds with sub-millisecond precision (performance.timeOrigin +
 * performance.now()), comparable between processes on one machine. A message's arrival time is
 * taken first thing in the handler, before any parsing.
 */
import { Agent, request } from "node:http"
import { io, type Socket } from "socket.io-client"
import WebSocket from "ws"

export const now = () => performance.timeOrigin + performance.now()

export type Kind = "ours" | "ws" | "socketio"

export type Command =
  | { readonly cmd: "clock" }
  | {
      readonly cmd: "open"
      readonly kind: Kind
      /** ours: the HTTP base for tickets; ws/socketio: the server's URL. */
      readonly url: string
      /** ours: the live socket URL (without the ticket). */
      readonly wsUrl?: string
      readonly organizationId?: string
      /** ours: one access token per session to open (users repeat); others: their count matters. */
      readonly tokens: ReadonlyArray<string>
      /** Upgrades (or ticket + upgrade) in flight at once; 0 = all at once. */
      readonly concurrency: number
    }
  | { readonly cmd: "arm" }
  | { readonly cmd: "collect"; readonly expect: Expected; readonly timeoutMs: number }
  | { readonly cmd: "close" }
  | { readonly cmd: "status" }

/** What every armed client must receive, exactly once. */
export type Expected =
  | {
      readonly kind: "permissions"
      readonly revision: string
      readonly added: ReadonlyArray<string>
      readonly removed: ReadonlyArray<string>
    }
  | { readonly kind: "text"; readonly text: string }

export interface OpenReport {
  readonly opened: number
  readonly failed: number
  /** Sessions the server dropped right after the upgrade (1006, no frame), opened again with a fresh ticket. */
  readonly reopened: number
  readonly errors: Record<string, number>
  readonly startedAt: number
  /** Arrival of each opened session's first frame (hello) or open event, absolute. */
  readonly readyAt: ReadonlyArray<number>
  /** How long each client took from its start (ticket request, or upgrade) to ready, ms. */
  readonly openMs: ReadonlyArray<number>
  /** ours: how long each ticket request took, ms. */
  readonly ticketMs: ReadonlyArray<number>
  /** ours: the first hello, to check its shape. */
  readonly sample: string | undefined
}

export interface CollectReport {
  /** Arrival times of the correct messages, absolute. */
  readonly arrivals: ReadonlyArray<number>
  readonly missing: number
  readonly incorrect: number
  /** Clients that got more than one message after arming. */
  readonly extra: number
  readonly samples: ReadonlyArray<string>
  /** One message as received, and its size in bytes. */
  readonly sample: string | undefined
  readonly bytes: number
}

export interface StatusReport {
  readonly open: number
  /** Sockets closed without this process asking, by close code or error. */
  readonly unexpectedCloses: Record<string, number>
}

interface Client {
  readonly close: () => void
  readyAt: number
  open: boolean
  closing: boolean
  first: { at: number; data: string } | undefined
  extra: number
}

const localAddress = process.env.BENCH_LOCAL_ADDRESS ?? "127.0.0.1"
const HTTP_CONNECTIONS = Number(process.env.BENCH_HTTP_CONNECTIONS ?? 8)
const agent = new Agent({ keepAlive: true, maxSockets: HTTP_CONNECTIONS, localAddress } as ConstructorParameters<
  typeof Agent
>[0])

let clients: Array<Client> = []
let armed = false
const unexpectedCloses: Record<string, number> = {}
const bump = (counts: Record<string, number>, key: string) => {
  counts[key] = (counts[key] ?? 0) + 1
}

const postTicket = (base: string, token: string, organizationId: string) =>
  new Promise<string>((resolve, reject) => {
    const body = JSON.stringify({ organizationId })
    const req = request(
      `${base}/v1/realtime/tickets`,
      {
        method: "POST",
        agent,
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body)
        }
      },
      (res) => {
        let text = ""
        res.setEncoding("utf8")
        res.on("data", (chunk) => {
          text += chunk
        })
        res.on("end", () => {
          if (res.statusCode !== 201) return reject(new Error(`ticket ${res.statusCode}`))
          try {
            resolve((JSON.parse(text) as { ticket: string }).ticket)
          } catch {
            reject(new Error("ticket unreadable"))
          }
        })
      }
    )
    req.on("error", (error: NodeJS.ErrnoException) => reject(new Error(`ticket ${error.code ?? error.message}`)))
    req.end(body)
  })

const onData = (client: Client, at: number, data: string) => {
  if (!armed) return
  if (client.first === undefined) client.first = { at, data }
  else client.extra += 1
}

const onUnexpectedClose = (client: Client, why: string) => {
  if (client.open && !client.closing) bump(unexpectedCloses, why)
  client.open = false
}

/** Opens one client; resolves with it once ready (hello / open / connect), rejects with a short reason. */
const openOne = (command: Extract<Command, { cmd: "open" }>, index: number, ticketMs: Array<number>) =>
  new Promise<{ client: Client; hello: string | undefined }>((resolve, reject) => {
    let settled = false
    const fail = (why: string) => {
      if (settled) return
      settled = true
      reject(new Error(why))
    }
    if (command.kind === "socketio") {
      const socket: Socket = io(command.url, {
        transports: ["websocket"],
        forceNew: true,
        reconnection: false,
        timeout: 60_000,
        ...({ localAddress, perMessageDeflate: false } as object)
      })
      const client: Client = {
        close: () => socket.disconnect(),
        readyAt: 0,
        open: false,
        closing: false,
        first: undefined,
        extra: 0
      }
      socket.on("permissions", (payload: unknown) => onData(client, now(), JSON.stringify(payload)))
      socket.once("connect", () => {
        client.readyAt = now()
        client.open = true
        settled = true
        resolve({ client, hello: undefined })
      })
      socket.once("connect_error", (error) => fail(`connect_error ${error.message}`))
      socket.on("disconnect", (reason) => onUnexpectedClose(client, `disconnect ${reason}`))
      return
    }
    const connect = (url: string) => {
      const ws = new WebSocket(url, { localAddress, perMessageDeflate: false })
      let upgradedAt: number | undefined
      const client: Client = {
        close: () => ws.terminate(),
        readyAt: 0,
        open: false,
        closing: false,
        first: undefined,
        extra: 0
      }
      if (command.kind === "ours") {
        ws.on("message", (data) => {
          const at = now()
          if (!client.open) {
            const text = data.toString()
            if (!text.startsWith('{"type":"hello"')) {
              fail(`first frame ${text.slice(0, 120)}`)
              return
            }
            client.readyAt = at
            client.open = true
            settled = true
            resolve({ client, hello: text })
            return
          }
          onData(client, at, data.toString())
        })
      } else {
        ws.on("message", (data) => onData(client, now(), data.toString()))
        ws.once("open", () => {
          client.readyAt = now()
          client.open = true
          settled = true
          resolve({ client, hello: undefined })
        })
      }
      ws.once("unexpected-response", (_req, res) => {
        fail(`upgrade ${res.statusCode}`)
        ws.terminate()
      })
      ws.on("error", (error: NodeJS.ErrnoException) => fail(`socket ${error.code ?? error.message}`))
      ws.once("upgrade", () => {
        upgradedAt = now()
      })
      ws.on("close", (code) => {
        fail(
          upgradedAt === undefined
            ? `closed ${code} before the upgrade`
            : `closed ${code} after the upgrade, before ${command.kind === "ours" ? "hello" : "ready"}`
        )
        onUnexpectedClose(client, `close ${code}`)
      })
    }
    if (command.kind === "ws") return connect(command.url)
    const started = now()
    postTicket(command.url, command.tokens[index]!, command.organizationId!).then(
      (ticket) => {
        ticketMs.push(now() - started)
        connect(`${command.wsUrl}?ticket=${ticket}`)
      },
      (error: Error) => fail(error.message)
    )
  })

const open = async (command: Extract<Command, { cmd: "open" }>): Promise<OpenReport> => {
  const errors: Record<string, number> = {}
  const readyAt: Array<number> = []
  const ticketMs: Array<number> = []
  const openMs: Array<number> = []
  let sample: string | undefined
  let failed = 0
  let reopened = 0
  let next = 0
  const total = command.tokens.length
  const startedAt = now()
  const lane = async () => {
    while (next < total) {
      const index = next++
      const began = now()
      try {
        let opened: Awaited<ReturnType<typeof openOne>> | undefined
        // The pinned uWebSockets.js now and then drops a socket it has just upgraded (1006, no
        // frame; uNetworking/uWebSockets#1929). A client reconnects with a fresh ticket, as
        // LiveClient does: so do these, twice at most, and the drops are reported.
        for (let attempt = 1; opened === undefined; attempt++) {
          try {
            opened = await openOne(command, index, ticketMs)
          } catch (error) {
            if (attempt === 3 || !(error as Error).message.startsWith("closed 1006 after the upgrade")) throw error
            reopened += 1
          }
        }
        const { client, hello } = opened
        clients.push(client)
        readyAt.push(client.readyAt)
        openMs.push(client.readyAt - began)
        sample ??= hello
      } catch (error) {
        failed += 1
        bump(errors, (error as Error).message)
      }
    }
  }
  const lanes = command.concurrency <= 0 ? total : Math.min(command.concurrency, total)
  await Promise.all(Array.from({ length: lanes }, lane))
  return { opened: readyAt.length, failed, reopened, errors, startedAt, readyAt, openMs, ticketMs, sample }
}

const matches = (expected: Expected, data: string) => {
  if (expected.kind === "text") return data === expected.text
  let frame: Record<string, unknown>
  try {
    frame = JSON.parse(data) as Record<string, unknown>
  } catch {
    return false
  }
  const same = (a: unknown, b: ReadonlyArray<string>) =>
    Array.isArray(a) && a.length === b.length && a.every((value, i) => value === b[i])
  return (
    Object.keys(frame).length === 4 &&
    frame.type === "permissions" &&
    frame.revision === expected.revision &&
    same(frame.added, expected.added) &&
    same(frame.removed, expected.removed)
  )
}

const collect = async (expected: Expected, timeoutMs: number): Promise<CollectReport> => {
  const deadline = now() + timeoutMs
  const live = () => clients.filter((client) => client.open)
  while (now() < deadline && live().some((client) => client.first === undefined)) {
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  armed = false
  const arrivals: Array<number> = []
  const samples: Array<string> = []
  let missing = 0
  let incorrect = 0
  let extra = 0
  let bytes = 0
  let sample: string | undefined
  for (const client of clients) {
    if (client.extra > 0) extra += 1
    if (client.first === undefined) {
      missing += 1
      continue
    }
    bytes = Buffer.byteLength(client.first.data)
    sample ??= client.first.data
    if (matches(expected, client.first.data)) arrivals.push(client.first.at)
    else {
      incorrect += 1
      if (samples.length < 3) samples.push(client.first.data)
    }
  }
  return { arrivals, missing, incorrect, extra, samples, sample, bytes }
}

const closeAll = async () => {
  const closing = clients
  clients = []
  for (const client of closing) {
    client.closing = true
    client.close()
  }
  // Let the close events run before answering.
  await new Promise((resolve) => setTimeout(resolve, 50))
  return { closed: closing.length }
}

const handle = async (command: Command): Promise<object> => {
  switch (command.cmd) {
    case "clock":
      return { now: now() }
    case "open":
      return open(command)
    case "arm":
      for (const client of clients) {
        client.first = undefined
        client.extra = 0
      }
      armed = true
      return {}
    case "collect":
      return collect(command.expect, command.timeoutMs)
    case "close":
      return closeAll()
    case "status":
      return {
        open: clients.filter((client) => client.open).length,
        unexpectedCloses
      } satisfies StatusReport
  }
}

process.on("message", (message: { id: number; command: Command }) => {
  handle(message.command).then(
    (reply) => process.send?.({ id: message.id, ok: true, reply }),
    (error: unknown) => process.send?.({ id: message.id, ok: false, error: String(error) })
  )
})
process.on("disconnect", () => process.exit(0))
process.send?.({ id: 0, ok: true, reply: { ready: true } })
