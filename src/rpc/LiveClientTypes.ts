/**
 * The public types of the live client (src/rpc/LiveClient.ts re-exports them): the socket it
 * accepts, its options, the changes it reports and its error.
 */
import type { Change } from "../domain/EffectiveSet.ts"
import type { ServerMessage } from "./LiveProtocol.ts"

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

/** What `POST /v1/realtime/tickets` answers. */
export interface LiveTicket {
  readonly ticket: string
  readonly url: string
  readonly expiresIn: number
}

/** The defaults of `ConnectOptions`, as docs/live-protocol.md states them. */
export const LiveClientDefaults = {
  backoffInitialMs: 250,
  backoffMaxMs: 10_000,
  awaitTimeoutMs: 10_000,
  checkTimeoutMs: 10_000,
  pingIntervalMs: 25_000,
  idleTimeoutMs: 60_000,
  connectTimeoutMs: 10_000,
  /** Times the first connect opens again a socket dropped with 1006 right after its upgrade. */
  connectRetries: 2
} as const

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

export interface LiveChange extends Change {
  /** `hello` (a full snapshot), `permissions` (a diff) or `revoked` (everything removed). */
  readonly source: "hello" | "permissions" | "revoked"
  readonly revision: string
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

type ServerErrorCode = Extract<ServerMessage, { type: "error" }>["code"]

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
