/**
 * The load generator for bench:check's live-socket case, run as its own process (like bench/load.ts)
 * so it does not share an event loop or a core with the server. It opens LIVE_SOCKETS live sessions
 * (a ticket from `POST /v1/realtime/tickets` with LIVE_TOKEN for each, then the upgrade; a session
 * is open at its `hello`), keeps them open, and on each `{"cmd":"run","seconds":S}` line on stdin
 * makes every socket send `check` messages for S seconds: one in flight per socket, at most
 * LIVE_RATE a second per socket (under the server's 20/s limit), cycling through LIVE_CHECKS.
 *
 * stdout, one JSON line each: `{"event":"open",…}` once the sessions are open; per run
 * `{"event":"start"}` then `{"event":"done",…}` with the answers counted, error frames by code, the
 * latency percentiles and this process's own CPU time. `{"cmd":"stop"}` closes everything and exits.
 *
 *   LIVE_BASE=… LIVE_WS=… LIVE_TOKEN=… LIVE_ORG=… LIVE_SOCKETS=500 LIVE_RATE=18 LIVE_CHECKS='[…]' \
 *     node --import tsx bench/liveCheckClient.ts
 */
import { createInterface } from "node:readline"
import WebSocket from "ws"

const env = (name: string) => {
  const value = process.env[name]
  if (value === undefined || value === "") throw new Error(`${name} is required`)
  return value
}
const base = env("LIVE_BASE")
const wsUrl = env("LIVE_WS")
const token = env("LIVE_TOKEN")
const organizationId = env("LIVE_ORG")
const sockets = Number(env("LIVE_SOCKETS"))
const rate = Number(env("LIVE_RATE"))
const checks = JSON.parse(env("LIVE_CHECKS")) as ReadonlyArray<{ permission: string; resource?: unknown }>
const OPENING_AT_ONCE = 32

interface Session {
  readonly socket: WebSocket
  pending: { id: string; at: number } | undefined
  next: number
}

const say = (message: unknown) => process.stdout.write(`${JSON.stringify(message)}\n`)

const ticket = async () => {
  const response = await fetch(`${base}/v1/realtime/tickets`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ organizationId })
  })
  if (response.status !== 201) throw new Error(`ticket: ${response.status} ${await response.text()}`)
  return ((await response.json()) as { ticket: string }).ticket
}

let retries = 0
let onFrame: (session: Session, frame: { type: string; id?: string; code?: string }) => void = () => {}

/** One session, open at its `hello`; a socket dropped before it (1006 after the upgrade) is opened again. */
const open = async (attempt = 0): Promise<Session> => {
  const socket = new WebSocket(`${wsUrl}?ticket=${await ticket()}`, { perMessageDeflate: false })
  const session: Session = { socket, pending: undefined, next: 0 }
  const opened = await new Promise<boolean>((resolve, reject) => {
    socket.on("message", (data) => {
      const frame = JSON.parse(String(data)) as { type: string; id?: string; code?: string }
      if (frame.type === "hello") resolve(true)
      else onFrame(session, frame)
    })
    socket.on("close", (code) => (code === 1006 ? resolve(false) : reject(new Error(`closed ${code} before hello`))))
    socket.on("error", () => {})
  })
  if (opened) return session
  if (attempt >= 3) throw new Error("dropped before hello three times")
  retries++
  return open(attempt + 1)
}

const sessions: Array<Session> = []
let next = 0
await Promise.all(
  Array.from({ length: OPENING_AT_ONCE }, async () => {
    while (next < sockets) {
      next++
      sessions.push(await open())
    }
  })
)
for (const session of sessions) session.socket.on("close", () => say({ event: "closed" }))
say({ event: "open", sessions: sessions.length, retries })

const run = async (seconds: number) => {
  const latencies: Array<number> = []
  const errors: Record<string, number> = {}
  let sent = 0
  let cursor = 0
  let bytes = 0
  const gap = 1000 / rate
  const send = (session: Session, now: number) => {
    const id = String(sent++)
    const check = checks[cursor++ % checks.length]!
    const text = JSON.stringify({ type: "check", id, ...check })
    bytes += text.length
    session.pending = { id, at: now }
    session.next = now + gap
    session.socket.send(text)
  }
  onFrame = (session, frame) => {
    const pending = session.pending
    if (pending === undefined || frame.id !== pending.id) return
    const now = performance.now()
    if (frame.type === "check.result") latencies.push(now - pending.at)
    else errors[frame.code ?? frame.type] = (errors[frame.code ?? frame.type] ?? 0) + 1
    session.pending = undefined
    if (now >= session.next && now < ends) send(session, now)
  }
  say({ event: "start" })
  const cpu = process.cpuUsage()
  const began = performance.now()
  const ends = began + seconds * 1000
  // Spread the first sends over one gap, then a 5 ms tick sends for every idle socket whose turn came.
  sessions.forEach((session) => {
    session.next = began + Math.random() * gap
  })
  while (performance.now() < ends) {
    const now = performance.now()
    for (const session of sessions) if (session.pending === undefined && now >= session.next) send(session, now)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  // Answers to checks sent before the end still count (the server did that work inside the window).
  const drainUntil = performance.now() + 2000
  while (sessions.some((s) => s.pending !== undefined) && performance.now() < drainUntil) {
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  const used = process.cpuUsage(cpu)
  const elapsed = (performance.now() - began) / 1000
  latencies.sort((a, b) => a - b)
  const at = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? 0
  say({
    event: "done",
    answered: latencies.length,
    sent,
    unanswered: sessions.filter((s) => s.pending !== undefined).length,
    errors,
    bytes,
    seconds: elapsed,
    latency: { p50: at(0.5), p99: at(0.99), average: latencies.reduce((a, b) => a + b, 0) / (latencies.length || 1) },
    cpuUs: used.user + used.system
  })
  for (const session of sessions) session.pending = undefined
}

for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line) as { cmd: "run"; seconds: number } | { cmd: "stop" }
  if (command.cmd === "stop") break
  await run(command.seconds)
}
for (const session of sessions) session.socket.removeAllListeners("close").close()
process.exit(0)
