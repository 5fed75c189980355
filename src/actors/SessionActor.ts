/**
 * One live session: a fiber with a bounded mailbox and private state (the `Session` record). It
 * opens registered first, then checks in Postgres that the sign-in session, the membership and
 * the user are still live (S47), and only then says `hello`. It handles one message at a time,
 * so it needs no locks:
 * - client frames (`check`, `await`, `ping`), rate limited per connection;
 * - `refresh` from the router, coalesced: the first change is applied at once, those arriving
 *   within `recomputeEveryMs` of the last recomputation together at its end, from the permission
 *   store at the current revision; a diff (keys and role names) is pushed only when something changed;
 * - `revoke`: it sends `revoked` and closes with 4001;
 * - `drain`: a client that fell behind (send buffer over the soft limit) was sent no diffs; once it
 *   drains it gets one fresh `hello`. Past the hard limit, or behind for too long: closed with 4002.
 * Its revision never goes backwards. Interrupting the fiber (socket closed) unregisters it. The
 * limits are the protocol's (`LiveLimits` in src/rpc/LiveProtocol.ts, stated in the docs).
 */
import { Duration, Effect, Either, Fiber, Option, Queue, type Scope } from "effect"
import { spannedGen } from "../services/Span.ts"
import * as EffectiveSet from "../domain/EffectiveSet.ts"
import { gcra } from "../domain/Gcra.ts"
import {
  type ClientMessage,
  CloseCode,
  decodeClientMessage,
  encodeServerMessage,
  LiveLimits,
  type RevokedReason,
  type ServerMessage
} from "../rpc/LiveProtocol.ts"
import { PermissionStore, type SessionSnapshot } from "../services/PermissionStore.ts"
import type { TicketClaims } from "../services/Realtime.ts"
import { Sessions, type SessionsShape } from "../services/Sessions.ts"
import { revokedReasonFor } from "./LiveRouter.ts"
import { adopt, close, hello, type Inbound, type LiveSocket, revokedBy, type Session, send, wake } from "./Session.ts"
import { type SessionHandle, SessionRegistry } from "./SessionRegistry.ts"

export type { Inbound, LiveSocket } from "./Session.ts"

const BURST_WINDOW_MS = (LiveLimits.burst / LiveLimits.messagesPerSecond) * 1000
const STUCK_FOR = Duration.millis(LiveLimits.stuckMs)
const DROPPED = "Too many messages; this one was dropped"

/** The frame both the actor and the transport send for a message they drop. */
export const rateLimitedFrame = encodeServerMessage({ type: "error", code: "rate_limited", message: DROPPED })

/** The session's state from the store, shared with this user's other sessions asking at once. */
const snapshot = ({ claims: { organizationId, userId }, registry, store }: Session, atLeast?: string) =>
  registry.shared(`${organizationId}/${userId}/${atLeast ?? ""}`, store.session(organizationId, userId, atLeast))

const end = Effect.fn("SessionActor.revoke")((session: Session, reason: RevokedReason) =>
  Effect.sync(() => {
    session.registry.counters.revoked += 1
    send(session, { type: "revoked", reason })
    close(session, CloseCode.revoked, reason)
  })
)

const tooSlow = (session: Session) => Effect.sync(() => close(session, CloseCode.tooSlow, "client too slow"))

/** Sends a frame of the set unless the client is behind; falls behind, or is closed, when its buffer is full. */
const push = (session: Session, frame: ServerMessage): Effect.Effect<void, never, Scope.Scope> =>
  Effect.gen(function* () {
    const { socket, registry } = session
    if (session.stuck !== undefined || !socket.isOpen()) return
    const buffered = socket.bufferedAmount()
    if (buffered > LiveLimits.hardBufferBytes) return yield* tooSlow(session)
    if (buffered > LiveLimits.softBufferBytes) {
      session.stuck = yield* Effect.forkScoped(Effect.sleep(STUCK_FOR).pipe(Effect.zipRight(tooSlow(session))))
      return
    }
    registry.counters.pushes += 1
    if (frame.type === "hello") registry.counters.snapshots += 1
    send(session, frame)
  })

/** Applies a newer snapshot: one `permissions` frame with what changed (keys, role names), if anything did. */
const apply = (session: Session, next: SessionSnapshot) => {
  const reason = revokedBy[next.access]
  if (reason !== undefined) {
    session.signals.revoke ??= reason
    return Effect.void
  }
  const set = EffectiveSet.fromSnapshot(next)
  if (set.revision < session.held.revision) return Effect.void
  const before = session.held
  adopt(session, next, set)
  const frame = EffectiveSet.diff(before, set)
  return EffectiveSet.isEmptyDiff(frame) ? Effect.void : push(session, { type: "permissions", ...frame })
}

const recompute = (session: Session, atLeast?: string) =>
  Effect.suspend(() => {
    session.registry.counters.recomputations += 1
    return Effect.flatMap(snapshot(session, atLeast), (next) => apply(session, next))
  })

/** A `Wake`: recompute now if the last recomputation is old enough, else once at the end of the interval. */
const onWake = (session: Session) =>
  Effect.suspend(() => {
    session.signals.wake = false
    if (!session.signals.refresh || session.signals.revoke !== undefined) return Effect.void
    const now = session.clock.unsafeCurrentTimeMillis()
    const wait = session.pacing.last + LiveLimits.recomputeEveryMs - now
    if (wait > 0) {
      if (session.pacing.timer) return Effect.void
      session.pacing.timer = true
      const later = Effect.sleep(Duration.millis(wait)).pipe(
        Effect.andThen(() => {
          session.pacing.timer = false
          wake(session)
        })
      )
      return Effect.asVoid(Effect.forkScoped(later))
    }
    session.signals.refresh = false
    session.pacing.last = now
    return recompute(session).pipe(
      // The store could not answer: try again shortly rather than keep a stale set.
      Effect.catchAll(() =>
        Effect.forkScoped(Effect.sleep(Duration.seconds(1)).pipe(Effect.andThen(() => session.handle.refresh())))
      ),
      Effect.asVoid
    )
  })

/** The client drained its buffer after falling behind: what it missed, in one `hello`, at the newest revision. */
const resync = spannedGen("SessionActor.resync", function* (session: Session) {
  const { stuck, socket } = session
  if (stuck === undefined || !socket.isOpen() || socket.bufferedAmount() > LiveLimits.softBufferBytes) return
  session.stuck = undefined
  yield* Fiber.interrupt(stuck)
  const fresh = yield* Effect.either(snapshot(session))
  if (Either.isRight(fresh)) {
    const reason = revokedBy[fresh.right.access]
    if (reason !== undefined) session.signals.revoke ??= reason
    else if (BigInt(fresh.right.revision) >= session.held.revision) adopt(session, fresh.right)
  }
  session.registry.counters.snapshots += 1
  if (session.signals.revoke === undefined) send(session, hello(session))
})

/**
 * Spends one of the client's messages: `messagesPerSecond` sustained, `burst` at once (a GCRA over
 * the window in which the burst refills, the same as a token bucket); false when none is left.
 */
const allowMessage = ({ rate, clock }: Session) => {
  const step = gcra(clock.unsafeCurrentTimeMillis(), rate.tat, LiveLimits.burst, BURST_WINDOW_MS)
  if (step.allowed) rate.tat = step.tat
  return step.allowed
}

const answerCheck = (session: Session, { id, permission, resource }: Extract<ClientMessage, { type: "check" }>) =>
  Effect.gen(function* () {
    const { organizationId, userId } = session.claims
    const request = { organizationId, userId, permission, resource, minRevision: session.held.revision.toString() }
    const answer = yield* Effect.either(session.store.check(request))
    if (Either.isLeft(answer)) {
      return send(session, { type: "error", code: "unavailable", message: "Cannot decide right now; denied", id })
    }
    const { allowed, reason, revision, blocked, member } = answer.right
    if (blocked === true || !member) session.handle.refresh()
    send(session, { type: "check.result", id, allowed, reason, revision })
  })

/** An `await` ahead of the held set: recompute at that revision, which the store waits for briefly. */
const catchUp = spannedGen("SessionActor.await", function* (session: Session, id: string, revision: string) {
  const outcome = yield* Effect.either(recompute(session, revision))
  if (Either.isRight(outcome)) return true
  const down = outcome.left._tag !== "Conflict"
  send(session, {
    type: "error",
    code: down ? "unavailable" : "revision_not_reached",
    message: down ? "Cannot load the session right now" : `The organization has not reached revision ${revision}`,
    id
  })
  return false
})

const answerAwait = (session: Session, { id, revision }: Extract<ClientMessage, { type: "await" }>) =>
  Effect.gen(function* () {
    if (BigInt(revision) > session.held.revision && !(yield* catchUp(session, id, revision))) return
    send(session, { type: "awaited", id, revision: session.held.revision.toString() })
  })

const onFrame = (session: Session, text: string) => {
  if (!allowMessage(session)) {
    session.rate.dropped += 1
    if (session.rate.dropped >= LiveLimits.floodClose) close(session, CloseCode.flooding, "too many messages")
    else if (session.socket.isOpen()) session.socket.send(rateLimitedFrame)
    return Effect.void
  }
  const decoded = decodeClientMessage(text)
  if (Either.isLeft(decoded)) {
    const message = "Not a valid message; see docs/live-protocol.md"
    return Effect.sync(() => send(session, { type: "error", code: "invalid_message", message }))
  }
  const message = decoded.right
  switch (message.type) {
    case "ping":
      return Effect.sync(() => send(session, { type: "pong" }))
    case "check":
      return answerCheck(session, message)
    case "await":
      return answerAwait(session, message)
  }
}

const dispatch = (session: Session, message: Inbound) => {
  switch (message._tag) {
    case "Frame":
      return onFrame(session, message.text)
    case "Binary":
      return Effect.sync(() =>
        send(session, { type: "error", code: "invalid_message", message: "Send JSON text frames" })
      )
    case "Drain":
      return resync(session)
    case "Wake":
      return onWake(session)
  }
}

interface ActorOptions {
  readonly connectionId: number
  readonly socket: LiveSocket
  readonly claims: TicketClaims
  readonly mailbox: Queue.Queue<Inbound>
  /** The revision the client last saw (`?revision=`), so the first snapshot is at least that. */
  readonly resumeAt: string | undefined
}

/** Whether the sign-in session ended (logout, password reset, disable…), and why, from Postgres. */
const sessionEnded = (sessions: SessionsShape, sessionId: string) =>
  Effect.flatMap(sessions.hasEnded(sessionId), (ended) =>
    ended
      ? Effect.map(sessions.revokedAmong([sessionId]), ([found]) => revokedReasonFor(found?.reason ?? ""))
      : Effect.succeed(undefined)
  )

/**
 * Registers the session, then decides whether it may open, then sends `hello`: a `Session`, or
 * undefined when it ended. Registered first (S47), so that a revocation committed at any moment
 * is either routed to this session or seen by the checks that follow, which read Postgres: the
 * sign-in session not ended, the user a member, not disabled, the organization not frozen. A
 * refused session gets `revoked` and 4001, never a `hello`. A `resumeAt` the organization never
 * reached gets the current set (the client replaces its own).
 */
const open = Effect.fn("SessionActor.open")(function* (options: ActorOptions) {
  const { claims, socket, mailbox } = options
  const { organizationId, userId } = claims
  const store = yield* PermissionStore
  const registry = yield* SessionRegistry
  const sessions = yield* Sessions
  const clock = yield* Effect.clock
  const now = clock.unsafeCurrentTimeMillis()
  const signals: Session["signals"] = { refresh: false, wake: false, revoke: undefined }
  const handle: SessionHandle = {
    connectionId: options.connectionId,
    sessionId: claims.sessionId,
    userId,
    organizationId,
    refresh: () => {
      signals.refresh = true
      wake(session)
    },
    revoke: (reason) => {
      signals.revoke ??= reason
      wake(session)
    }
  }
  const session: Session = {
    claims,
    socket,
    mailbox,
    store,
    registry,
    clock,
    handle,
    held: EffectiveSet.empty,
    roleIds: [],
    signals,
    pacing: { last: Number.NEGATIVE_INFINITY, timer: false },
    stuck: undefined,
    rate: { tat: undefined, dropped: 0 }
  }
  const opened = { hello: false }
  registry.register(handle, [])
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      registry.unregister(handle)
      if (opened.hello) registry.counters.closed += 1
    })
  )
  // Loaded directly: opens arrive spread out (a ticket each), so there is little to share, and
  // they must not queue behind a fan-out's recomputations.
  const checked = yield* Effect.either(
    Effect.all(
      [
        store
          .session(organizationId, userId, options.resumeAt)
          .pipe(Effect.catchTag("Conflict", () => store.session(organizationId, userId))),
        sessionEnded(sessions, claims.sessionId)
      ],
      { concurrency: 2 }
    )
  )
  if (Either.isLeft(checked)) {
    send(session, { type: "error", code: "unavailable", message: "Cannot load the session; reconnect later" })
    close(session, CloseCode.tryAgainLater, "unavailable")
    return undefined
  }
  const [first, ended] = checked.right
  const refused = signals.revoke ?? ended ?? revokedBy[first.access]
  if (refused !== undefined) {
    yield* end(session, refused)
    return undefined
  }
  adopt(session, first)
  // An event routed before the registration found no one: catch up now.
  if ((registry.latestRevision(organizationId) ?? -1n) > session.held.revision) handle.refresh()
  registry.counters.opened += 1
  registry.counters.snapshots += 1
  opened.hello = true
  send(session, hello(session))
  // The session ends at its absolute expiry at the latest.
  const untilExpiry = Math.max(0, claims.sessionExpiresAt - now)
  yield* Effect.forkScoped(
    Effect.sleep(Duration.millis(untilExpiry)).pipe(Effect.andThen(() => handle.revoke("session_expired")))
  )
  return session
})

/**
 * Runs the actor of one connection until the session ends or the fiber is interrupted. `mailbox`
 * is filled by the transport (frames, drain) and by the handle (wake).
 */
export const runSessionActor = (options: ActorOptions) =>
  Effect.gen(function* () {
    const session = yield* open(options)
    if (session === undefined) return
    while (session.socket.isOpen()) {
      yield* dispatch(session, yield* Queue.take(session.mailbox))
      if (session.signals.revoke !== undefined) return yield* end(session, session.signals.revoke)
    }
  }).pipe(Effect.scoped)

/**
 * The mailbox of a new connection. Client frames fill at most `LiveLimits.mailbox` places; the rest is
 * headroom for the actor's own signals (one wake, one drain at a time), which are never dropped.
 */
export const makeMailbox = Queue.bounded<Inbound>(LiveLimits.mailbox + 4)

/** Offers a client frame without waiting; false when the client has too many frames queued. */
export const offerFrame = (mailbox: Queue.Queue<Inbound>, inbound: Inbound) =>
  Option.getOrElse(mailbox.unsafeSize(), () => Number.POSITIVE_INFINITY) < LiveLimits.mailbox &&
  mailbox.unsafeOffer(inbound)
