/**
 * The typed live client: keeps a local copy of the session's permission set over the live socket
 * (docs/live-protocol.md), for browsers (global `WebSocket`) and Node (pass `WebSocket` from `ws`).
 *
 *   const live = await LiveClient.connect({ getTicket: () => api.realtimeTicket(organizationId) })
 *   live.can("doc:edit", { type: "doc", id: "42" })
 *   live.onChange(() => render())
 *
 * Every server frame is decoded with the shared Schemas of src/actors/LiveProtocol.ts; one that does
 * not decode is dropped and reported to `onError`. The API is promise-based so a browser app needs
 * nothing else; `LiveClient.scoped` wraps it for Effect code. It runs on the caller's event loop
 * with plain timers (there is no Effect runtime to own fibers in a browser page).
 *
 * While disconnected `can()` answers false (deny by default; `staleWhileReconnecting` keeps the last
 * known set instead); a revoked session clears the set and never reconnects.
 */
import { Effect, Either, Schema, type Scope } from "effect"
import {
  Check,
  type ClientMessage,
  CloseCode,
  decodeServerMessage,
  encodeClientMessage,
  MAX_FRAME_BYTES,
  type RevokedReason,
  type ServerMessage
} from "./LiveProtocol.ts"

// --- WebSocket, structurally: the browser's and the `ws` package's both fit ----------------------

type Handler<E> = { bivarianceHack(event: E): void }["bivarianceHack"]

export interface LiveSocket {
  readonly readyState: number
  send(data: string): void
  close(code?: number, reason?: string): void
  onopen: Handler<unknown> | null
  onmessage: Handler<{ readonly data: unknown }> | null
  onclose: Handler<{ readonly code: number; readonly reason: string }> | null
  onerror: Handler<unknown> | null
}

export type LiveSocketConstructor = new (url: string) => LiveSocket

const OPEN = 1

// --- Public types ----------------------------------------------------------------------------------

/** What `POST /v1/realtime/tickets` answers. */
export interface LiveTicket {
  readonly ticket: string
  readonly url: string
  readonly expiresIn: number
}

export interface ConnectOptions {
  /** Asks the server for a fresh single-use ticket; called once per connection attempt. */
  readonly getTicket: () => Promise<LiveTicket>
  /** Defaults to `globalThis.WebSocket`; in Node 20 pass `WebSocket` from the `ws` package. */
  readonly WebSocket?: LiveSocketConstructor
  /** Reconnect delays: full jitter over `initialMs * 2^attempt`, capped at `maxMs` (250 ms, 10 s). */
  readonly backoff?: { readonly initialMs?: number; readonly maxMs?: number }
  /** How long `awaitRevision` waits by default (10 s). */
  readonly awaitTimeoutMs?: number
  /** How long `check` waits for its answer (10 s). */
  readonly checkTimeoutMs?: number
  /** `ping` every `intervalMs` (25 s); a socket silent for `timeoutMs` (60 s) is dropped and reopened. */
  readonly heartbeat?: { readonly intervalMs?: number; readonly timeoutMs?: number }
  /** How long one attempt may take from opening the socket to `hello` (10 s). */
  readonly connectTimeoutMs?: number
  /**
   * Whether `can()` keeps answering from the last known set while reconnecting. Off by default: a
   * permission revoked while the socket was down must not show as granted (`can()` is false until
   * the next `hello`). Turn it on to keep UI stable across short reconnects, accepting staleness.
   */
  readonly staleWhileReconnecting?: boolean
}

export type LiveStatus = "connecting" | "open" | "reconnecting" | "revoked" | "closed"

export type ScopedKeys = Readonly<Record<string, ReadonlyArray<string>>>

export interface LiveChange {
  /** `hello` (a full snapshot), `permissions` (a diff) or `revoked` (everything removed). */
  readonly source: "hello" | "permissions" | "revoked"
  readonly revision: string
  /** Organization-wide keys that were added or removed by this frame. */
  readonly added: ReadonlyArray<string>
  readonly removed: ReadonlyArray<string>
  /** Resource-scoped keys added or removed, by `type/id`. */
  readonly scopedAdded: ScopedKeys
  readonly scopedRemoved: ScopedKeys
  /** Organization-wide keys now denied, or no longer denied, on one resource, by `type/id`. */
  readonly scopedDeniedAdded: ScopedKeys
  readonly scopedDeniedRemoved: ScopedKeys
}

export interface CheckAnswer {
  readonly allowed: boolean
  readonly reason: string
  readonly revision: string
}

export interface Resource {
  readonly type: string
  readonly id: string
}

export type LiveErrorCode =
  | ServerErrorCode
  /** `close()` was called. */
  | "closed"
  /** The socket dropped while the call was waiting (or there was none). */
  | "disconnected"
  /** The session ended; the client will not reconnect. */
  | "revoked"
  | "timeout"
  /** The first connection attempt failed (no ticket, refused upgrade, no `hello`). */
  | "connect_failed"
  /** The call's arguments do not fit the protocol (checked before sending). */
  | "invalid_argument"
  /** A server frame that does not decode; it was ignored. */
  | "invalid_frame"
  /** A later connection attempt failed; the client keeps retrying. */
  | "reconnect_failed"
  /** An `onChange`/`onStatus`/`onRevoked` listener threw. */
  | "listener_failed"

type ServerErrorCode = Extract<ServerMessage, { type: "error" }>["code"]

export class LiveClientError extends Error {
  override readonly name = "LiveClientError"
  constructor(
    readonly code: LiveErrorCode,
    message: string,
    readonly details: { readonly closeCode?: number; readonly cause?: unknown } = {}
  ) {
    super(message)
  }
}

// --- Internals -------------------------------------------------------------------------------------

type Hello = Extract<ServerMessage, { type: "hello" }>
type Diff = Extract<ServerMessage, { type: "permissions" }>

interface PendingCheck {
  readonly resolve: (answer: CheckAnswer) => void
  readonly reject: (error: LiveClientError) => void
  readonly timer: ReturnType<typeof setTimeout>
}

interface PendingAwait {
  readonly target: bigint
  readonly revision: string
  readonly resolve: (revision: string) => void
  readonly reject: (error: LiveClientError) => void
  readonly timer: ReturnType<typeof setTimeout>
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

const noop = () => {}
const validateCheck = Schema.validateEither(Check)
const validRevision = /^\d+$/

const scopeKey = (resource: Resource) => `${resource.type}/${resource.id}`

const toRecord = (map: ReadonlyMap<string, ReadonlySet<string>>): ScopedKeys => {
  const out: Record<string, ReadonlyArray<string>> = {}
  for (const [key, set] of map) if (set.size > 0) out[key] = [...set].sort()
  return out
}

/** The keys of `a` that `b` does not hold, by `type/id`. */
const minus = (
  a: ReadonlyMap<string, ReadonlySet<string>>,
  b: ReadonlyMap<string, ReadonlySet<string>>
): ScopedKeys => {
  const out = new Map<string, Set<string>>()
  for (const [key, set] of a) {
    const missing = [...set].filter((permission) => !b.get(key)?.has(permission))
    if (missing.length > 0) out.set(key, new Set(missing))
  }
  return toRecord(out)
}

/** Adds `keys` under `key` in `map`, writing what was actually new into `changed`. */
const addScoped = (map: Map<string, Set<string>>, scoped: ScopedKeys, changed: Map<string, Set<string>>) => {
  for (const [key, keys] of Object.entries(scoped)) {
    const set = map.get(key) ?? new Set<string>()
    for (const permission of keys) {
      if (set.has(permission)) continue
      set.add(permission)
      changed.set(key, (changed.get(key) ?? new Set()).add(permission))
    }
    if (set.size > 0) map.set(key, set)
  }
}

const removeScoped = (map: Map<string, Set<string>>, scoped: ScopedKeys, changed: Map<string, Set<string>>) => {
  for (const [key, keys] of Object.entries(scoped)) {
    const set = map.get(key)
    if (set === undefined) continue
    for (const permission of keys) {
      if (!set.delete(permission)) continue
      changed.set(key, (changed.get(key) ?? new Set()).add(permission))
    }
    if (set.size === 0) map.delete(key)
  }
}

export class LiveClient {
  /**
   * Opens the live socket; resolves after the first `hello`, rejects if that first attempt fails
   * (a socket dropped right after its upgrade, before `hello`, is opened again, twice at most).
   */
  static connect(options: ConnectOptions): Promise<LiveClient> {
    const client = new LiveClient(options)
    return client.ready
  }

  /** `connect` for Effect code: the client is closed when the scope closes. */
  static scoped(options: ConnectOptions): Effect.Effect<LiveClient, LiveClientError, Scope.Scope> {
    return Effect.acquireRelease(
      Effect.tryPromise({
        try: () => LiveClient.connect(options),
        catch: (cause) =>
          cause instanceof LiveClientError ? cause : new LiveClientError("connect_failed", String(cause), { cause })
      }),
      (client) => Effect.sync(() => client.close())
    )
  }

  // State, as of `revision`.
  private readonly keys = new Set<string>()
  private readonly scopedKeys = new Map<string, Set<string>>()
  private readonly deniedKeys = new Map<string, Set<string>>()
  private currentRoles: ReadonlyArray<string> = []
  private currentRevision: string | undefined
  private ids = { sessionId: "", userId: "", organizationId: "" }
  private currentStatus: LiveStatus = "connecting"
  private revokedReason: RevokedReason | undefined

  private readonly WebSocketImpl: LiveSocketConstructor | undefined
  private readonly initialMs: number
  private readonly maxMs: number
  private readonly awaitTimeoutMs: number
  private readonly checkTimeoutMs: number
  private readonly pingMs: number
  private readonly idleMs: number
  private readonly connectTimeoutMs: number

  private attempt: Attempt | undefined
  private generation = 0
  private failures = 0
  /** Retries of the first connect after a drop right after the upgrade (see `disconnected`). */
  private connectRetries = 0
  private nextId = 0
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined
  private readonly checks = new Map<string, PendingCheck>()
  private readonly awaits = new Map<string, PendingAwait>()
  private readonly changeListeners = new Set<(change: LiveChange) => void>()
  private readonly statusListeners = new Set<(status: LiveStatus) => void>()
  private readonly revokedListeners = new Set<(reason: RevokedReason | undefined) => void>()
  private readonly errorListeners = new Set<(error: LiveClientError) => void>()
  private readonly ready: Promise<LiveClient>
  private settleReady: { resolve: (client: LiveClient) => void; reject: (error: LiveClientError) => void } | undefined

  private constructor(private readonly options: ConnectOptions) {
    this.WebSocketImpl = options.WebSocket ?? (globalThis as { WebSocket?: LiveSocketConstructor }).WebSocket
    this.initialMs = options.backoff?.initialMs ?? 250
    this.maxMs = options.backoff?.maxMs ?? 10_000
    this.awaitTimeoutMs = options.awaitTimeoutMs ?? 10_000
    this.checkTimeoutMs = options.checkTimeoutMs ?? 10_000
    this.pingMs = options.heartbeat?.intervalMs ?? 25_000
    this.idleMs = options.heartbeat?.timeoutMs ?? 60_000
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000
    this.ready = new Promise((resolve, reject) => {
      this.settleReady = { resolve, reject }
    })
    void this.open()
  }

  // --- State -------------------------------------------------------------------------------------

  /** Keys allowed organization-wide. Emptied when the session is revoked. */
  get permissions(): ReadonlySet<string> {
    return this.keys
  }
  /** Keys allowed on one resource beyond `permissions`, by `type/id`. */
  get scoped(): ScopedKeys {
    return toRecord(this.scopedKeys)
  }
  /** Keys of `permissions` denied on one resource, by `type/id`. */
  get scopedDenied(): ScopedKeys {
    return toRecord(this.deniedKeys)
  }
  get roles(): ReadonlyArray<string> {
    return this.currentRoles
  }
  /** The revision of the local set (a string holding an integer; never goes backwards). */
  get revision(): string {
    return this.currentRevision ?? "0"
  }
  get sessionId(): string {
    return this.ids.sessionId
  }
  get userId(): string {
    return this.ids.userId
  }
  get organizationId(): string {
    return this.ids.organizationId
  }
  get status(): LiveStatus {
    return this.currentStatus
  }
  /** True while the socket is open and the set is live; false while reconnecting, revoked or closed. */
  get connected(): boolean {
    return this.currentStatus === "open"
  }
  /** Why the session ended, once `status` is `revoked` (undefined if the server closed 4001 without saying). */
  get revocationReason(): RevokedReason | undefined {
    return this.revokedReason
  }

  /**
   * From the local set, no round trip. Without a resource: allowed organization-wide. On a resource:
   * allowed there by a role assigned on it, or allowed organization-wide and not denied on it. Grants
   * with conditions are not in the set (they depend on the resource's attributes), so `can` may say
   * false where `check()` would allow; never the reverse. While disconnected it is false (unless
   * `staleWhileReconnecting`); after revocation it is always false.
   */
  can(permission: string, resource?: Resource): boolean {
    if (!this.connected && this.options.staleWhileReconnecting !== true) return false
    if (resource === undefined) return this.keys.has(permission)
    const key = scopeKey(resource)
    if (this.scopedKeys.get(key)?.has(permission) === true) return true
    return this.keys.has(permission) && this.deniedKeys.get(key)?.has(permission) !== true
  }

  // --- Calls -------------------------------------------------------------------------------------

  /** Asks the server (conditions included). Rejects on an `error` answer, disconnect, timeout or `close()`. */
  check(
    permission: string,
    resource?: Resource & { readonly attributes?: Readonly<Record<string, unknown>> }
  ): Promise<CheckAnswer> {
    const id = `c${++this.nextId}`
    const message: ClientMessage =
      resource === undefined ? { type: "check", id, permission } : { type: "check", id, permission, resource }
    const valid = validateCheck(message)
    if (Either.isLeft(valid)) return Promise.reject(new LiveClientError("invalid_argument", valid.left.message))
    const unusable = this.unusable()
    if (unusable !== undefined) return Promise.reject(unusable)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.checks.delete(id)
        reject(new LiveClientError("timeout", `No answer to the check of ${permission}`))
      }, this.checkTimeoutMs)
      this.checks.set(id, { resolve, reject, timer })
      const failure = this.send(message)
      if (failure !== undefined) {
        this.checks.delete(id)
        clearTimeout(timer)
        reject(failure)
      }
    })
  }

  /**
   * Resolves once the session has applied at least `revision` (e.g. the revision a write answered
   * with): at once if the local set is there already, else when a frame brings it or the server
   * answers `awaited` (sent even when nothing changed for this session). Survives reconnects (asked
   * again on the new socket); rejects on `revision_not_reached`, timeout, revocation or `close()`.
   */
  awaitRevision(revision: string, options: { readonly timeoutMs?: number } = {}): Promise<string> {
    if (!validRevision.test(revision)) {
      return Promise.reject(new LiveClientError("invalid_argument", "A revision is a string of digits"))
    }
    if (this.currentStatus === "revoked" || this.currentStatus === "closed") return Promise.reject(this.unusable())
    if (this.reached(BigInt(revision))) return Promise.resolve(this.revision)
    const id = `a${++this.nextId}`
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.awaits.delete(id)
        reject(new LiveClientError("timeout", `Revision ${revision} not reached in time`))
      }, options.timeoutMs ?? this.awaitTimeoutMs)
      this.awaits.set(id, { target: BigInt(revision), revision, resolve, reject, timer })
      if (this.connected) this.send({ type: "await", id, revision })
    })
  }

  /** Closes for good: no reconnect; pending calls reject with `closed`. */
  close(): void {
    if (this.currentStatus === "closed") return
    const wasRevoked = this.currentStatus === "revoked"
    this.generation++
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer)
    this.dropAttempt(1000, "client closed")
    const error = new LiveClientError("closed", "The live client was closed")
    this.failReady(error)
    this.rejectAll(error)
    if (!wasRevoked) this.setStatus("closed")
  }

  // --- Listeners (each returns its unsubscribe function) ----------------------------------------

  /** After each applied `hello` or diff, and when revocation empties the set. */
  onChange(listener: (change: LiveChange) => void): () => void {
    return subscribe(this.changeListeners, listener)
  }
  onStatus(listener: (status: LiveStatus) => void): () => void {
    return subscribe(this.statusListeners, listener)
  }
  onRevoked(listener: (reason: RevokedReason | undefined) => void): () => void {
    return subscribe(this.revokedListeners, listener)
  }
  /** Frames that do not decode, server errors not tied to a call, failed reconnect attempts. */
  onError(listener: (error: LiveClientError) => void): () => void {
    return subscribe(this.errorListeners, listener)
  }

  // --- Connection ----------------------------------------------------------------------------------

  private async open(): Promise<void> {
    const generation = ++this.generation
    const first = this.settleReady !== undefined
    this.setStatus(first ? "connecting" : "reconnecting")
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
      if (cause instanceof LiveClientError && cause.code === "revoked") return this.revoke(undefined)
      return this.attemptFailed(new LiveClientError("connect_failed", "Could not get a ticket", { cause }))
    }
    if (generation !== this.generation) return
    let url = ticket.url
    if (this.currentRevision !== undefined) {
      url += `${url.includes("?") ? "&" : "?"}revision=${this.currentRevision}`
    }
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
      this.revoke(undefined)
      return
    }
    // Dropped right after the upgrade, before `hello`: the server's WebSocket library does that now
    // and then (docs/live-protocol.md, close code 1006). Not a refusal: the first connect tries
    // again at once with a fresh ticket, twice at most.
    if (beforeHello && code === 1006 && this.settleReady !== undefined && this.connectRetries < 2) {
      this.connectRetries++
      void this.open()
      return
    }
    const error = new LiveClientError(
      "disconnected",
      `Live socket closed${code === undefined ? "" : ` (${code})`}${reason === "" ? "" : `: ${reason}`}`,
      code === undefined ? {} : { closeCode: code }
    )
    for (const [id, pending] of this.checks) {
      this.checks.delete(id)
      clearTimeout(pending.timer)
      pending.reject(error)
    }
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
      this.generation++
      this.failReady(failure)
      this.rejectAll(failure)
      this.setStatus("closed")
      return
    }
    this.report(
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

  private revoke(reason: RevokedReason | undefined): void {
    if (this.currentStatus === "revoked" || this.currentStatus === "closed") return
    this.generation++
    this.revokedReason = reason
    this.dropAttempt(1000, "revoked")
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer)
    const removed = [...this.keys].sort()
    const scopedRemoved = toRecord(this.scopedKeys)
    const scopedDeniedRemoved = toRecord(this.deniedKeys)
    this.keys.clear()
    this.scopedKeys.clear()
    this.deniedKeys.clear()
    this.currentRoles = []
    const error = new LiveClientError("revoked", `The session ended${reason === undefined ? "" : ` (${reason})`}`)
    this.failReady(error)
    this.rejectAll(error)
    this.setStatus("revoked")
    this.emit(this.changeListeners, {
      source: "revoked",
      revision: this.revision,
      added: [],
      removed,
      scopedAdded: {},
      scopedRemoved,
      scopedDeniedAdded: {},
      scopedDeniedRemoved
    })
    this.emit(this.revokedListeners, reason)
  }

  // --- Frames --------------------------------------------------------------------------------------

  private receive(attempt: Attempt, data: unknown): void {
    const decoded = typeof data === "string" ? decodeServerMessage(data) : undefined
    if (decoded === undefined || Either.isLeft(decoded)) {
      const detail = decoded === undefined ? "not a text frame" : decoded.left.message
      this.report(new LiveClientError("invalid_frame", `Ignored a server frame: ${detail}`))
      return
    }
    const message = decoded.right
    switch (message.type) {
      case "hello":
        this.applyHello(attempt, message)
        break
      case "permissions":
        // A diff is relative to this socket's snapshot: none before `hello`.
        if (attempt.helloSeen) this.applyDiff(message)
        break
      case "revoked":
        this.revoke(message.reason)
        break
      case "check.result": {
        const pending = this.checks.get(message.id)
        if (pending === undefined) break
        this.checks.delete(message.id)
        clearTimeout(pending.timer)
        pending.resolve({ allowed: message.allowed, reason: message.reason, revision: message.revision })
        break
      }
      case "awaited": {
        const pending = this.awaits.get(message.id)
        if (pending === undefined) break
        this.awaits.delete(message.id)
        clearTimeout(pending.timer)
        pending.resolve(message.revision)
        break
      }
      case "error":
        this.applyError(message)
        break
      case "pong":
        break
    }
  }

  private applyHello(attempt: Attempt, hello: Hello): void {
    const firstOnSocket = !attempt.helloSeen
    attempt.helloSeen = true
    if (firstOnSocket) {
      this.failures = 0
      // From now on the deadline is the idle timeout, not the connect timeout.
      clearTimeout(attempt.watchdog)
      this.armWatchdog(attempt)
      this.setStatus("open")
    }
    if (!this.isBehind(hello.revision)) {
      const before = new Set(this.keys)
      const scopedBefore = new Map(this.scopedKeys)
      const deniedBefore = new Map(this.deniedKeys)
      // Replaced in place: a caller holding `permissions` must never keep seeing an old set.
      this.keys.clear()
      for (const key of hello.permissions) this.keys.add(key)
      this.scopedKeys.clear()
      addScoped(this.scopedKeys, hello.scoped, new Map())
      this.deniedKeys.clear()
      addScoped(this.deniedKeys, hello.scopedDenied, new Map())
      this.currentRoles = [...hello.roles]
      this.currentRevision = hello.revision
      this.ids = { sessionId: hello.sessionId, userId: hello.userId, organizationId: hello.organizationId }
      this.changed("hello", {
        added: hello.permissions.filter((key) => !before.has(key)),
        removed: [...before].filter((key) => !this.keys.has(key)).sort(),
        scopedAdded: minus(this.scopedKeys, scopedBefore),
        scopedRemoved: minus(scopedBefore, this.scopedKeys),
        scopedDeniedAdded: minus(this.deniedKeys, deniedBefore),
        scopedDeniedRemoved: minus(deniedBefore, this.deniedKeys)
      })
    }
    // Awaits asked on an earlier socket (or before one was open) that this snapshot did not settle.
    if (firstOnSocket)
      for (const [id, pending] of this.awaits) this.send({ type: "await", id, revision: pending.revision })
    if (firstOnSocket && this.settleReady !== undefined) {
      const { resolve } = this.settleReady
      this.settleReady = undefined
      resolve(this)
    }
  }

  private applyDiff(diff: Diff): void {
    if (this.isBehind(diff.revision)) return
    const added = diff.added.filter((key) => !this.keys.has(key))
    for (const key of added) this.keys.add(key)
    const removed = diff.removed.filter((key) => this.keys.delete(key))
    const scopedAdded = new Map<string, Set<string>>()
    const scopedRemoved = new Map<string, Set<string>>()
    if (diff.scopedAdded !== undefined) addScoped(this.scopedKeys, diff.scopedAdded, scopedAdded)
    if (diff.scopedRemoved !== undefined) removeScoped(this.scopedKeys, diff.scopedRemoved, scopedRemoved)
    const deniedAdded = new Map<string, Set<string>>()
    const deniedRemoved = new Map<string, Set<string>>()
    if (diff.scopedDeniedAdded !== undefined) addScoped(this.deniedKeys, diff.scopedDeniedAdded, deniedAdded)
    if (diff.scopedDeniedRemoved !== undefined) removeScoped(this.deniedKeys, diff.scopedDeniedRemoved, deniedRemoved)
    this.currentRevision = diff.revision
    this.changed("permissions", {
      added,
      removed,
      scopedAdded: toRecord(scopedAdded),
      scopedRemoved: toRecord(scopedRemoved),
      scopedDeniedAdded: toRecord(deniedAdded),
      scopedDeniedRemoved: toRecord(deniedRemoved)
    })
  }

  private applyError(error: Extract<ServerMessage, { type: "error" }>): void {
    const failure = new LiveClientError(error.code, error.message)
    const check = error.id === undefined ? undefined : this.checks.get(error.id)
    const pending = error.id === undefined ? undefined : this.awaits.get(error.id)
    if (check !== undefined) {
      this.checks.delete(error.id!)
      clearTimeout(check.timer)
      check.reject(failure)
    } else if (pending !== undefined) {
      this.awaits.delete(error.id!)
      clearTimeout(pending.timer)
      pending.reject(failure)
    } else {
      this.report(failure)
    }
  }

  /** Called after the local set moved to `revision`: tells listeners, settles the awaits it satisfies. */
  private changed(source: "hello" | "permissions", change: Omit<LiveChange, "source" | "revision">): void {
    for (const [id, pending] of this.awaits) {
      if (!this.reached(pending.target)) continue
      this.awaits.delete(id)
      clearTimeout(pending.timer)
      pending.resolve(this.revision)
    }
    this.emit(this.changeListeners, { source, revision: this.revision, ...change })
  }

  // --- Helpers -------------------------------------------------------------------------------------

  /** Revisions are compared as integers ("10" > "9"); a frame behind the local set is ignored. */
  private isBehind(revision: string): boolean {
    return this.currentRevision !== undefined && BigInt(revision) < BigInt(this.currentRevision)
  }

  private reached(target: bigint): boolean {
    return this.currentRevision !== undefined && BigInt(this.currentRevision) >= target
  }

  private unusable(): LiveClientError | undefined {
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
    this.emit(this.statusListeners, status)
  }

  private failReady(error: LiveClientError): void {
    if (this.settleReady === undefined) return
    const { reject } = this.settleReady
    this.settleReady = undefined
    reject(error)
  }

  private rejectAll(error: LiveClientError): void {
    for (const pending of this.checks.values()) {
      clearTimeout(pending.timer)
      pending.reject(error)
    }
    this.checks.clear()
    for (const pending of this.awaits.values()) {
      clearTimeout(pending.timer)
      pending.reject(error)
    }
    this.awaits.clear()
  }

  private report(error: LiveClientError): void {
    for (const listener of [...this.errorListeners]) {
      try {
        listener(error)
      } catch {
        // An error listener that throws has nowhere left to report to.
      }
    }
  }

  private emit<A>(listeners: Set<(value: A) => void>, value: A): void {
    for (const listener of [...listeners]) {
      try {
        listener(value)
      } catch (cause) {
        this.report(new LiveClientError("listener_failed", "A live client listener threw", { cause }))
      }
    }
  }
}

const subscribe = <A>(listeners: Set<A>, listener: A): (() => void) => {
  listeners.add(listener)
  return () => {
    listeners.delete(listener)
  }
}
