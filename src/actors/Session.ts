/**
 * One live session's state, and the synchronous operations on it: sending, closing, the `hello`
 * frame, adopting a set, and taking a change the fan-out (FanOut.ts) computed for it. Its actor
 * (SessionActor.ts) is the only one that runs effects for it; the fan-out hands it a ready result
 * without waking it. An idle session is this record, its socket and its index entries: its
 * mailbox and its fiber exist only while it has something to do.
 */
import type { Clock, Fiber } from "effect"
import * as EffectiveSet from "../domain/EffectiveSet.ts"
import {
  type ClientMessage,
  CloseCode,
  encodeServerMessage,
  LiveLimits,
  type RevokedReason,
  type ServerMessage
} from "../rpc/LiveProtocol.ts"
import type { PermissionStoreShape, SessionSnapshot } from "../services/PermissionStore.ts"
import type { TicketClaims } from "../services/Realtime.ts"
import type { SessionsShape } from "../services/Sessions.ts"
import type { RunFork } from "./Deadlines.ts"
import type { Registry, SessionHandle } from "./SessionRegistry.ts"

/** The socket as the actor sees it; the transport (uWebSockets.js) implements it. */
export interface LiveSocket {
  /** False once the socket has closed: nothing may be sent then. */
  readonly isOpen: () => boolean
  readonly send: (text: string) => void
  readonly bufferedAmount: () => number
  readonly close: (code: number, reason: string) => void
}

export type Inbound =
  | { readonly _tag: "Frame"; readonly text: string }
  | { readonly _tag: "Binary" }
  /** A frame already counted against the rate limit and decoded, that needs the actor's fiber. */
  | { readonly _tag: "Admitted"; readonly message: Exclude<ClientMessage, { type: "ping" }> }

/** What every actor of a node shares. */
export interface ActorEnv {
  readonly store: PermissionStoreShape
  readonly registry: Registry
  readonly sessions: SessionsShape
  readonly clock: Clock.Clock
  readonly runFork: RunFork
  /** Starts the session's actor fiber unless it is running (SessionActor.ts). */
  readonly schedule: (session: Session) => void
}

/** A user's standing at one revision, ready to hand to each of their sessions. */
export interface Loaded {
  readonly revoked: RevokedReason | undefined
  readonly set: EffectiveSet.EffectiveSet
  readonly roleIds: ReadonlyArray<string>
}

export const revokedBy: Record<SessionSnapshot["access"], RevokedReason | undefined> = {
  ok: undefined,
  not_member: "member_removed",
  frozen: "organization_frozen",
  disabled: "user_disabled",
  no_organization: "organization_deleted"
}

export class Session implements SessionHandle {
  readonly sessionId: string
  readonly userId: string
  readonly organizationId: string
  /** The set the client holds (shared with every session holding the same), and the roles it depends on. */
  held: EffectiveSet.EffectiveSet = EffectiveSet.empty
  roleIds: ReadonlyArray<string> = []
  /** Client frames waiting for the actor; created on demand. */
  inbox: Array<Inbound> | undefined = undefined
  /** Whether the actor's fiber is running, and that fiber (to interrupt it when the socket closes). */
  busy = false
  fiber: Fiber.RuntimeFiber<void> | undefined = undefined
  /** Said `hello`; ended (revoked, closed, or refused). */
  opened = false
  ended = false
  /** Set by the router; the actor acts on it next. */
  revoking: RevokedReason | undefined = undefined
  /** The client fell behind (no diffs sent meanwhile); it drained its buffer since. */
  stuck = false
  drained = false
  /** Client messages: the rate limiter's state, and how many were dropped. */
  tat: number | undefined = undefined
  dropped = 0

  constructor(
    readonly connectionId: number,
    readonly claims: TicketClaims,
    readonly socket: LiveSocket,
    readonly env: ActorEnv,
    /** The revision the client last saw (`?revision=`), so the first snapshot is at least that. */
    readonly resumeAt: string | undefined
  ) {
    this.sessionId = claims.sessionId
    this.userId = claims.userId
    this.organizationId = claims.organizationId
  }

  /** Recompute the permission set: the fan-out loads it once for all of this user's sessions here. */
  refresh() {
    this.env.registry.fanOut.request(this)
  }

  revoke(reason: RevokedReason) {
    if (this.ended) return
    this.revoking ??= reason
    this.env.schedule(this)
  }

  /**
   * A change the fan-out loaded for this session's user: adopted at once, and its frame (computed
   * once for every session holding the same set) sent, unless the client is behind. Never goes
   * back a revision.
   */
  take(next: Loaded, frameFor: (before: EffectiveSet.EffectiveSet) => string | undefined) {
    // Before its `hello` the actor's own load decides (and catches up with what was routed meanwhile).
    if (!this.opened || this.ended || this.revoking !== undefined) return
    if (next.revoked !== undefined) return this.revoke(next.revoked)
    if (next.set.revision < this.held.revision || next.set === this.held) return
    const before = this.held
    adopt(this, next)
    const frame = frameFor(before)
    if (frame !== undefined) push(this, frame)
  }
}

export const send = (session: Session, message: ServerMessage) => sendText(session, encodeServerMessage(message))
export const sendText = ({ socket }: Session, text: string) => (socket.isOpen() ? socket.send(text) : undefined)
export const close = ({ socket }: Session, code: number, reason: string) =>
  socket.isOpen() ? socket.close(code, reason) : undefined

export const tooSlow = (session: Session) => close(session, CloseCode.tooSlow, "client too slow")

/** Sends a frame of the set unless the client is behind; falls behind, or is closed, when its buffer is full. */
export const push = (session: Session, frame: string) => {
  const { socket, env } = session
  if (session.stuck || !socket.isOpen()) return
  const buffered = socket.bufferedAmount()
  if (buffered > LiveLimits.hardBufferBytes) return tooSlow(session)
  if (buffered > LiveLimits.softBufferBytes) {
    session.stuck = true
    env.registry.stuckUntil(session, env.clock.unsafeCurrentTimeMillis() + LiveLimits.stuckMs)
    return
  }
  env.registry.counters.pushes += 1
  socket.send(frame)
}

/** The set's part of a `hello`, encoded once per shared set. */
const encodedSets = new WeakMap<EffectiveSet.EffectiveSet, string>()

/** The `hello` frame: the session's ids, then its set as the wire carries it (encoded once per set). */
export const hello = ({ claims, held }: Session): string => {
  let encoded = encodedSets.get(held)
  if (encoded === undefined) {
    encoded = JSON.stringify(EffectiveSet.toSnapshot(held)).slice(1)
    encodedSets.set(held, encoded)
  }
  const { sessionId, userId, organizationId } = claims
  const ids = JSON.stringify({ type: "hello", sessionId, userId, organizationId })
  return `${ids.slice(0, -1)},${encoded}`
}

/** Takes `next` as the held set, re-indexing the session if the roles it depends on changed. */
export const adopt = (session: Session, next: Loaded) => {
  session.env.registry.setRoles(session, next.roleIds)
  session.roleIds = next.roleIds
  session.held = next.set
}
