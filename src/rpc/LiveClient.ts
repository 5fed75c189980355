/**
 * The typed live client: keeps a local copy of the session's permission set over the live socket
 * (docs/live-protocol.md), for browsers (global `WebSocket`) and Node (pass `WebSocket` from `ws`).
 *
 *   const live = await LiveClient.connect({ getTicket: () => fetchTicket(organizationId) })
 *   live.can("doc:edit", { type: "doc", id: "42" })
 *   live.onChange(() => render())
 *
 * Three parts: this front (the public API and its listeners), the local copy of the set
 * (LivePermissions.ts, on the rules of domain/EffectiveSet.ts, which the server diffs with) and the
 * connection (LiveConnection.ts: socket, backoff, heartbeat; LiveCalls.ts: calls matched by id). Every server
 * frame is decoded with the shared Schemas of LiveProtocol.ts; one that does not decode is dropped
 * and reported to `onError`. The API is promise-based so a browser app needs nothing else;
 * `LiveClient.scoped` wraps it for Effect code.
 *
 * While disconnected `can()` answers false (deny by default; `staleWhileReconnecting` keeps the last
 * known set instead); a revoked session clears the set and never reconnects.
 */
import { Effect, type Scope } from "effect"
import type * as EffectiveSet from "../domain/EffectiveSet.ts"
import {
  type CheckAnswer,
  type ConnectOptions,
  type LiveChange,
  LiveClientDefaults,
  LiveClientError,
  type LiveStatus,
  type Resource,
  type ScopedKeys
} from "./LiveClientTypes.ts"
import { LiveConnection } from "./LiveConnection.ts"
import { LivePermissions } from "./LivePermissions.ts"
import type { RevokedReason } from "./LiveProtocol.ts"

export {
  type CheckAnswer,
  type ConnectOptions,
  type LiveChange,
  LiveClientDefaults,
  LiveClientError,
  type LiveErrorCode,
  type LiveSocket,
  type LiveSocketConstructor,
  type LiveStatus,
  type LiveTicket,
  type Resource,
  type ScopedKeys
} from "./LiveClientTypes.ts"

const validRevision = /^\d+$/

export class LiveClient {
  /**
   * Opens the live socket; resolves after the first `hello`, rejects if that first attempt fails
   * (a socket dropped right after its upgrade, before `hello`, is opened again, twice at most).
   */
  static connect(options: ConnectOptions): Promise<LiveClient> {
    const client = new LiveClient(options)
    return client.connection.ready.then(() => client)
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

  private readonly local = new LivePermissions()
  private readonly connection: LiveConnection
  private revokedReason: RevokedReason | undefined
  private readonly changeListeners = new Set<(change: LiveChange) => void>()
  private readonly statusListeners = new Set<(status: LiveStatus) => void>()
  private readonly revokedListeners = new Set<(reason: RevokedReason | undefined) => void>()
  private readonly errorListeners = new Set<(error: LiveClientError) => void>()

  private constructor(private readonly options: ConnectOptions) {
    this.connection = new LiveConnection(options, {
      hello: (hello, first) => this.changed("hello", this.local.applyHello(hello, first)),
      diff: (diff) => this.changed("permissions", this.local.applyDiff(diff)),
      revoked: (reason) => this.revoke(reason),
      status: (status) => this.emit(this.statusListeners, status),
      error: (error) => this.report(error),
      resumeAt: () => this.local.revision
    })
  }

  // --- State -------------------------------------------------------------------------------------

  /** Keys allowed organization-wide. Emptied when the session is revoked. */
  get permissions(): ReadonlySet<string> {
    return this.local.permissions
  }
  /** Keys allowed on one resource beyond `permissions`, by `type/id`. */
  get scoped(): ScopedKeys {
    return this.local.scoped
  }
  /** Keys of `permissions` denied on one resource, by `type/id`. */
  get scopedDenied(): ScopedKeys {
    return this.local.scopedDenied
  }
  get roles(): ReadonlyArray<string> {
    return this.local.roles
  }
  /**
   * The revision of the local set (a string holding an integer). It never goes backwards, but for
   * one case: a resume the organization never reached is answered with its current, lower revision.
   */
  get revision(): string {
    return this.local.revision ?? "0"
  }
  get sessionId(): string {
    return this.local.ids.sessionId
  }
  get userId(): string {
    return this.local.ids.userId
  }
  get organizationId(): string {
    return this.local.ids.organizationId
  }
  get status(): LiveStatus {
    return this.connection.status
  }
  /** True while the socket is open and the set is live; false while reconnecting, revoked or closed. */
  get connected(): boolean {
    return this.connection.status === "open"
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
    return this.local.can(permission, resource)
  }

  // --- Calls -------------------------------------------------------------------------------------

  /** Asks the server (conditions included). Rejects on an `error` answer, disconnect, timeout or `close()`. */
  check(
    permission: string,
    resource?: Resource & { readonly attributes?: Readonly<Record<string, unknown>> }
  ): Promise<CheckAnswer> {
    return this.connection.calls.check(permission, resource, this.connection.unusable())
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
    const status = this.connection.status
    if (status === "revoked" || status === "closed") return Promise.reject(this.connection.unusable())
    if (this.local.reached(BigInt(revision))) return Promise.resolve(this.revision)
    const timeoutMs = options.timeoutMs ?? this.options.awaitTimeoutMs ?? LiveClientDefaults.awaitTimeoutMs
    return this.connection.calls.awaitRevision(revision, timeoutMs, this.connected)
  }

  /** Closes for good: no reconnect; pending calls reject with `closed`. */
  close(): void {
    const status = this.connection.status
    if (status === "closed") return
    const error = new LiveClientError("closed", "The live client was closed")
    this.connection.stop(error, status === "revoked" ? undefined : "closed")
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

  // --- Internals -----------------------------------------------------------------------------------

  /** After the local set moved (`change` undefined: the frame was behind and ignored). */
  private changed(source: "hello" | "permissions", change: EffectiveSet.Change | undefined): void {
    if (change === undefined) return
    this.connection.calls.reached(BigInt(this.revision), this.revision)
    this.emit(this.changeListeners, { source, revision: this.revision, ...change })
  }

  private revoke(reason: RevokedReason | undefined): void {
    const status = this.connection.status
    if (status === "revoked" || status === "closed") return
    this.revokedReason = reason
    const change = this.local.clear()
    const error = new LiveClientError("revoked", `The session ended${reason === undefined ? "" : ` (${reason})`}`)
    this.connection.stop(error, "revoked")
    this.emit(this.changeListeners, { source: "revoked", revision: this.revision, ...change })
    this.emit(this.revokedListeners, reason)
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
