/**
 * The live client's connection: one socket at a time, opened with a fresh ticket, kept alive with
 * `ping`, watched for silence, reopened after a jittered, growing delay when it drops; `check` and
 * `await` calls matched with their answers by id (LiveCalls.ts). What the frames mean for the permission set is
 * left to its owner (LiveClient), told through `ConnectionEvents`. It runs on the caller's event
 * loop with plain timers (there is no Effect runtime to own fibers in a browser page).
 */
import { Either } from "effect"
import { LiveCalls } from "./LiveCalls.ts"
import {
  type ConnectOptions,
  LiveClientDefaults,
  LiveClientError,
  type LiveSocket,
  type LiveSocketConstructor,
  type LiveStatus,
  type LiveTicket
} from "./LiveClientTypes.ts"
import {
  type ClientMessage,
  CloseCode,
  decodeServerMessage,
  encodeClientMessage,
  MAX_FRAME_BYTES,
  type RevokedReason,
  type ServerMessage
} from "./LiveProtocol.ts"

type Hello = Extract<ServerMessage, { type: "hello" }>
type Diff = Extract<ServerMessage, { type: "permissions" }>

/** What the connection tells the set's owner. */
export interface ConnectionEvents {
  /** A `hello`; `first` when it is the first of its socket. */
  readonly hello: (hello: Hello, first: boolean) => void
  /** A diff, on a socket that has had its `hello`. */
  readonly diff: (diff: Diff) => void
  /** The session ended: a `revoked` frame, close 4001, or `getTicket` threw a `revoked` error. */
  readonly revoked: (reason: RevokedReason | undefined) => void
  readonly status: (status: LiveStatus) => void
  readonly error: (error: LiveClientError) => void
  /** The revision to resume at (`&revision=`); none before the first `hello`. */
  readonly resumeAt: () => string | undefined
}

interface Attempt {
  readonly socket: LiveSocket
  readonly startedAt: number
  lastTraffic: number
  /** The upgrade succeeded (`open`). */
  opened: boolean
  helloSeen: boolean
  ping?: ReturnType<typeof setInterval>
  watchdog?: ReturnType<typeof setTimeout>
}

const OPEN = 1
const noop = () => {}

export class LiveConnection {
  private currentStatus: LiveStatus = "connecting"
  private readonly WebSocketImpl: LiveSocketConstructor | undefined
  private readonly initialMs: number
  private readonly maxMs: number
  private readonly pingMs: number
  private readonly idleMs: number
  private readonly connectTimeoutMs: number

  private attempt: Attempt | undefined
  private generation = 0
  private failures = 0
  /** Retries of the first connect after a drop right after the upgrade (see `disconnected`). */
  private connectRetries = 0
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined
  /** `check` and `await` calls, sent on the open socket. */
  readonly calls: LiveCalls
  /** Settles with the first `hello`, or fails with the first attempt. */
  readonly ready: Promise<void>
  private settleReady: { resolve: () => void; reject: (error: LiveClientError) => void } | undefined

  constructor(
    private readonly options: ConnectOptions,
    private readonly events: ConnectionEvents
  ) {
    this.WebSocketImpl = options.WebSocket ?? (globalThis as { WebSocket?: LiveSocketConstructor }).WebSocket
    this.initialMs = options.backoff?.initialMs ?? LiveClientDefaults.backoffInitialMs
    this.maxMs = options.backoff?.maxMs ?? LiveClientDefaults.backoffMaxMs
    this.calls = new LiveCalls(options.checkTimeoutMs ?? LiveClientDefaults.checkTimeoutMs, (message) =>
      this.send(message)
    )
    this.pingMs = options.heartbeat?.intervalMs ?? LiveClientDefaults.pingIntervalMs
    this.idleMs = options.heartbeat?.timeoutMs ?? LiveClientDefaults.idleTimeoutMs
    this.connectTimeoutMs = options.connectTimeoutMs ?? LiveClientDefaults.connectTimeoutMs
    this.ready = new Promise((resolve, reject) => {
      this.settleReady = { resolve, reject }
    })
    void this.open()
  }

  get status(): LiveStatus {
    return this.currentStatus
  }

  /** Why a call cannot be made now, if it cannot. */
  unusable(): LiveClientError | undefined {
    switch (this.currentStatus) {
      case "open":
        return undefined
      case "revoked":
        return new LiveClientError("revoked", "The session ended")
      case "closed":
        return new LiveClientError("closed", "The live client was closed")
      default:
        return new LiveClientError("disconnected", "The live socket is not open")
    }
  }

  // --- Ending --------------------------------------------------------------------------------------

  /** Stops for good: no socket, no reconnect; `ready` and pending calls fail with `error`. */
  stop(error: LiveClientError, status: "revoked" | "closed" | undefined): void {
    this.generation++
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer)
    this.dropAttempt(1000, error.code === "revoked" ? "revoked" : "client closed")
    this.failReady(error)
    this.calls.failAll(error)
    if (status !== undefined) this.setStatus(status)
  }

  // --- The socket ----------------------------------------------------------------------------------

  private async open(): Promise<void> {
    const generation = ++this.generation
    this.setStatus(this.settleReady !== undefined ? "connecting" : "reconnecting")
    if (this.WebSocketImpl === undefined) {
      return this.attemptFailed(
        new LiveClientError("connect_failed", "No WebSocket here: pass `WebSocket` (the `ws` package in Node)")
      )
    }
    let ticket: LiveTicket
    try {
      ticket = await this.options.getTicket()
    } catch (cause) {
      if (generation !== this.generation) return
      if (cause instanceof LiveClientError && cause.code === "revoked") return this.events.revoked(undefined)
      return this.attemptFailed(new LiveClientError("connect_failed", "Could not get a ticket", { cause }))
    }
    if (generation !== this.generation) return
    const resumeAt = this.events.resumeAt()
    const url =
      resumeAt === undefined ? ticket.url : `${ticket.url}${ticket.url.includes("?") ? "&" : "?"}revision=${resumeAt}`
    let socket: LiveSocket
    try {
      socket = new this.WebSocketImpl(url)
    } catch (cause) {
      return this.attemptFailed(new LiveClientError("connect_failed", "Could not open the socket", { cause }))
    }
    const now = Date.now()
    const attempt: Attempt = { socket, startedAt: now, lastTraffic: now, opened: false, helloSeen: false }
    this.attempt = attempt
    socket.onopen = () => {
      if (this.attempt !== attempt) return
      attempt.opened = true
      attempt.ping = setInterval(() => this.send({ type: "ping" }), this.pingMs)
    }
    socket.onmessage = (event) => {
      if (this.attempt !== attempt) return
      attempt.lastTraffic = Date.now()
      this.receive(attempt, event.data)
    }
    socket.onerror = noop
    socket.onclose = (event) => {
      if (this.attempt !== attempt) return
      this.dropAttempt()
      this.disconnected(event.code, event.reason, attempt.opened && !attempt.helloSeen)
    }
    this.armWatchdog(attempt)
  }

  /** Drops a socket that stays silent (no `hello` in time, or no traffic, not even `pong`). */
  private armWatchdog(attempt: Attempt): void {
    const deadline = attempt.helloSeen ? attempt.lastTraffic + this.idleMs : attempt.startedAt + this.connectTimeoutMs
    attempt.watchdog = setTimeout(
      () => {
        if (this.attempt !== attempt) return
        const overdue = attempt.helloSeen
          ? Date.now() - attempt.lastTraffic >= this.idleMs
          : Date.now() - attempt.startedAt >= this.connectTimeoutMs
        if (!overdue) return this.armWatchdog(attempt)
        this.dropAttempt(1000, "no traffic")
        this.disconnected(undefined, attempt.helloSeen ? "no traffic from the server" : "no hello from the server")
      },
      Math.max(0, deadline - Date.now())
    )
  }

  /** Forgets the current socket (closing it if `code` is given), its timers and its handlers. */
  private dropAttempt(code?: number, reason?: string): void {
    const attempt = this.attempt
    if (attempt === undefined) return
    this.attempt = undefined
    if (attempt.ping !== undefined) clearInterval(attempt.ping)
    if (attempt.watchdog !== undefined) clearTimeout(attempt.watchdog)
    const socket = attempt.socket
    // No-op handlers, not null: `ws` throws on an `error` event nobody listens to.
    socket.onopen = noop
    socket.onmessage = noop
    socket.onerror = noop
    socket.onclose = noop
    if (code !== undefined) {
      try {
        socket.close(code, reason)
      } catch {
        // Already closing.
      }
    }
  }

  private disconnected(code: number | undefined, reason: string, beforeHello = false): void {
    if (code === CloseCode.revoked) {
      this.events.revoked(undefined)
      return
    }
    // Dropped right after the upgrade, before `hello`: the server's WebSocket library does that now
    // and then (docs/live-protocol.md, close code 1006). Not a refusal: the first connect tries
    // again at once with a fresh ticket, twice at most.
    if (
      beforeHello &&
      code === 1006 &&
      this.settleReady !== undefined &&
      this.connectRetries < LiveClientDefaults.connectRetries
    ) {
      this.connectRetries++
      void this.open()
      return
    }
    const error = new LiveClientError(
      "disconnected",
      `Live socket closed${code === undefined ? "" : ` (${code})`}${reason === "" ? "" : `: ${reason}`}`,
      code === undefined ? {} : { closeCode: code }
    )
    this.calls.failChecks(error)
    this.attemptFailed(error)
  }

  /** The first attempt rejects `connect`; later ones retry after a jittered, growing delay. */
  private attemptFailed(error: LiveClientError): void {
    if (this.currentStatus === "closed" || this.currentStatus === "revoked") return
    if (this.settleReady !== undefined) {
      const failure =
        error.code === "connect_failed"
          ? error
          : new LiveClientError("connect_failed", error.message, { ...error.details, cause: error })
      this.stop(failure, "closed")
      return
    }
    this.events.error(
      error.code === "disconnected" ? error : new LiveClientError("reconnect_failed", error.message, { cause: error })
    )
    this.setStatus("reconnecting")
    const ceiling = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.failures, 30))
    this.failures++
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined
      void this.open()
    }, Math.random() * ceiling)
  }

  // --- Frames --------------------------------------------------------------------------------------

  private receive(attempt: Attempt, data: unknown): void {
    const decoded = typeof data === "string" ? decodeServerMessage(data) : undefined
    if (decoded === undefined || Either.isLeft(decoded)) {
      const detail = decoded === undefined ? "not a text frame" : decoded.left.message
      this.events.error(new LiveClientError("invalid_frame", `Ignored a server frame: ${detail}`))
      return
    }
    const message = decoded.right
    switch (message.type) {
      case "hello":
        this.receiveHello(attempt, message)
        return
      case "permissions":
        // A diff is relative to this socket's snapshot: none before `hello`.
        if (attempt.helloSeen) this.events.diff(message)
        return
      case "revoked":
        this.events.revoked(message.reason)
        return
      case "check.result":
      case "awaited":
        this.calls.answer(message)
        return
      case "error":
        if (!this.calls.answer(message)) this.events.error(new LiveClientError(message.code, message.message))
        return
      case "pong":
        return
    }
  }

  private receiveHello(attempt: Attempt, hello: Hello): void {
    const first = !attempt.helloSeen
    attempt.helloSeen = true
    if (first) {
      this.failures = 0
      // From now on the deadline is the idle timeout, not the connect timeout.
      clearTimeout(attempt.watchdog)
      this.armWatchdog(attempt)
      this.setStatus("open")
    }
    this.events.hello(hello, first)
    if (!first) return
    // Awaits asked on an earlier socket (or before one was open) that this snapshot did not settle.
    this.calls.resendAwaits()
    if (this.settleReady !== undefined) {
      const { resolve } = this.settleReady
      this.settleReady = undefined
      resolve()
    }
  }

  // --- Helpers -------------------------------------------------------------------------------------

  private send(message: ClientMessage): LiveClientError | undefined {
    const socket = this.attempt?.socket
    if (socket === undefined || socket.readyState !== OPEN) {
      return new LiveClientError("disconnected", "The live socket is not open")
    }
    const frame = encodeClientMessage(message)
    if (frame.length * 3 > MAX_FRAME_BYTES && new TextEncoder().encode(frame).length > MAX_FRAME_BYTES) {
      return new LiveClientError("invalid_argument", `A message may not exceed ${MAX_FRAME_BYTES} bytes`)
    }
    try {
      socket.send(frame)
      return undefined
    } catch (cause) {
      return new LiveClientError("disconnected", "Could not send on the live socket", { cause })
    }
  }

  private setStatus(status: LiveStatus): void {
    if (this.currentStatus === status) return
    this.currentStatus = status
    this.events.status(status)
  }

  private failReady(error: LiveClientError): void {
    if (this.settleReady === undefined) return
    const { reject } = this.settleReady
    this.settleReady = undefined
    reject(error)
  }
}
