/**
 * One live session's actor: the only runner of effects for its `Session` record (Session.ts). It
 * runs on a fiber started on demand, one message at a time, so it needs no locks, and ends when
 * it has nothing left to do; an idle session holds no fiber and no mailbox.
 * - Opening: registered first, then it checks in Postgres that the sign-in session, the
 *   membership and the user are still live (S47), and only then says `hello`.
 * - Client frames (`check`, `await`, `ping`), rate limited per connection, queued up to
 *   `LiveLimits.mailbox`.
 * - Permission changes arrive ready-made from the fan-out (FanOut.ts), which paces them (the first
 *   at once, a burst together at the end of `recomputeEveryMs`) and pushes the diff; only an
 *   `await` ahead of the held set makes the actor load one itself.
 * - `revoke`: it sends `revoked` and closes with 4001.
 * - A client that fell behind (send buffer over the soft limit) was sent no diffs; once it drains
 *   it gets one fresh `hello`. Past the hard limit, or behind for too long: closed with 4002.
 * - At its absolute expiry the session ends (a timer wheel in the registry, not a fiber).
 * Its revision never goes backwards. The socket closing unregisters it and interrupts its fiber.
 * The limits are the protocol's (`LiveLimits` in src/rpc/LiveProtocol.ts, stated in the docs).
 */
import { Effect, Either, Fiber } from "effect"
import * as EffectiveSet from "../domain/EffectiveSet.ts"
import { gcra } from "../domain/Gcra.ts"
import {
  type ClientMessage,
  CloseCode,
  decodeClientMessage,
  encodeServerMessage,
  LiveLimits,
  type RevokedReason
} from "../rpc/LiveProtocol.ts"
import { type CheckAnswer, PermissionStore } from "../services/PermissionStore.ts"
import type { TicketClaims } from "../services/Realtime.ts"
import { Sessions, type SessionsShape } from "../services/Sessions.ts"
import { spannedGen } from "../services/Span.ts"
import type { RunFork } from "./Deadlines.ts"
import { revokedReasonFor } from "./LiveRouter.ts"
import { type ActorEnv, adopt, close, hello, type Inbound, type LiveSocket, Session, send, sendText } from "./Session.ts"
import { SessionRegistry } from "./SessionRegistry.ts"

export type { Inbound, LiveSocket } from "./Session.ts"
export { Session } from "./Session.ts"

const BURST_WINDOW_MS = (LiveLimits.burst / LiveLimits.messagesPerSecond) * 1000
const DROPPED = "Too many messages; this one was dropped"

/** The frame both the actor and the transport send for a message they drop. */
export const rateLimitedFrame = encodeServerMessage({ type: "error", code: "rate_limited", message: DROPPED })

/** The session's state from the store, shared with this user's other sessions asking at once. */
const snapshot = ({ organizationId, userId, env }: Session, atLeast?: string) =>
  env.registry.shared(`${organizationId}/${userId}/${atLeast ?? ""}`, env.store.session(organizationId, userId, atLeast))

/** Unregisters the session, once: it has ended, or its socket closed. */
const finish = (session: Session) => {
  if (session.ended) return
  session.ended = true
  session.inbox = undefined
  session.env.registry.unregister(session)
  if (session.opened) session.env.registry.counters.closed += 1
}

const end = (session: Session, reason: RevokedReason) =>
  Effect.sync(() => {
    session.env.registry.counters.revoked += 1
    send(session, { type: "revoked", reason })
    close(session, CloseCode.revoked, reason)
    finish(session)
  })

/** The diff frame between two sets, or undefined when nothing changed. */
const frameBetween = (next: EffectiveSet.EffectiveSet) => (before: EffectiveSet.EffectiveSet) => {
  const change = EffectiveSet.diff(before, next)
  return EffectiveSet.isEmptyDiff(change) ? undefined : encodeServerMessage({ type: "permissions", ...change })
}

/** Loads the set at `atLeast` (waiting briefly for it) and takes it like a change from the fan-out. */
const recompute = (session: Session, atLeast: string) =>
  Effect.map(snapshot(session, atLeast), (found) => {
    session.env.registry.counters.recomputations += 1
    const next = session.env.registry.fanOut.loaded(found)
    session.take(next, frameBetween(next.set))
  })

/** The client drained its buffer after falling behind: what it missed, in one `hello`, at the newest revision. */
const resync = spannedGen("SessionActor.resync", function* (session: Session) {
  const { socket, env } = session
  if (!session.stuck || !socket.isOpen() || socket.bufferedAmount() > LiveLimits.softBufferBytes) return
  env.registry.caughtUp(session)
  const fresh = yield* Effect.either(snapshot(session))
  if (Either.isRight(fresh)) {
    const next = env.registry.fanOut.loaded(fresh.right)
    if (next.revoked !== undefined) session.revoking ??= next.revoked
    else if (next.set.revision >= session.held.revision) adopt(session, next)
  }
  // Still `stuck` while loading, so that the fan-out sent no diff the client could not apply.
  session.stuck = false
  env.registry.counters.snapshots += 1
  if (session.revoking === undefined) sendText(session, hello(session))
})

/**
 * Spends one of the client's messages: `messagesPerSecond` sustained, `burst` at once (a GCRA over
 * the window in which the burst refills, the same as a token bucket); false when none is left.
 */
const allowMessage = (session: Session) => {
  const step = gcra(session.env.clock.unsafeCurrentTimeMillis(), session.tat, LiveLimits.burst, BURST_WINDOW_MS)
  if (step.allowed) session.tat = step.tat
  return step.allowed
}

/** A check's answer on the socket; a user no longer a member (or blocked) makes the set reload. */
const reply = (session: Session, id: string, answer: CheckAnswer) => {
  const { allowed, reason, revision, blocked, member } = answer
  if (blocked === true || !member) session.refresh()
  send(session, { type: "check.result", id, allowed, reason, revision })
}

const checkRequest = (session: Session, { permission, resource }: Extract<ClientMessage, { type: "check" }>) => {
  const { organizationId, userId } = session
  return { organizationId, userId, permission, resource, minRevision: session.held.revision.toString() }
}

const answerCheck = (session: Session, message: Extract<ClientMessage, { type: "check" }>) =>
  Effect.map(Effect.either(session.env.store.check(checkRequest(session, message))), (answer) =>
    Either.isLeft(answer)
      ? send(session, { type: "error", code: "unavailable", message: "Cannot decide right now; denied", id: message.id })
      : reply(session, message.id, answer.right)
  )

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

/**
 * Spends the frame against the rate limit and decodes it, answering at once what needs no effect: a
 * drop, an invalid frame, a ping, a check this node's memory decides at the held revision. What is
 * left (a check that must wait or read, an `await`) is returned for the actor's fiber.
 */
const admit = (session: Session, text: string): Exclude<ClientMessage, { type: "ping" }> | undefined => {
  if (!allowMessage(session)) {
    session.dropped += 1
    if (session.dropped >= LiveLimits.floodClose) close(session, CloseCode.flooding, "too many messages")
    else if (session.socket.isOpen()) session.socket.send(rateLimitedFrame)
    return undefined
  }
  const decoded = decodeClientMessage(text)
  if (Either.isLeft(decoded)) {
    send(session, { type: "error", code: "invalid_message", message: "Not a valid message; see docs/live-protocol.md" })
    return undefined
  }
  const message = decoded.right
  if (message.type === "ping") {
    send(session, { type: "pong" })
    return undefined
  }
  if (message.type === "check") {
    const answer = session.env.store.checkNow(checkRequest(session, message))
    if (answer !== undefined) {
      reply(session, message.id, answer)
      return undefined
    }
  }
  return message
}

const act = (session: Session, message: Exclude<ClientMessage, { type: "ping" }>) =>
  message.type === "check" ? answerCheck(session, message) : answerAwait(session, message)

const onFrame = (session: Session, text: string) => {
  const message = admit(session, text)
  return message === undefined ? Effect.void : act(session, message)
}

const dispatch = (session: Session, inbound: Inbound) => {
  switch (inbound._tag) {
    case "Frame":
      return onFrame(session, inbound.text)
    case "Admitted":
      return act(session, inbound.message)
    case "Binary":
      return Effect.sync(() =>
        send(session, { type: "error", code: "invalid_message", message: "Send JSON text frames" })
      )
  }
}

/** Whether the sign-in session ended (logout, password reset, disable…), and why, from Postgres. */
const sessionEnded = (sessions: SessionsShape, sessionId: string) =>
  Effect.flatMap(sessions.hasEnded(sessionId), (ended) =>
    ended
      ? Effect.map(sessions.revokedAmong([sessionId]), ([found]) => revokedReasonFor(found?.reason ?? ""))
      : Effect.succeed(undefined)
  )

/**
 * Decides whether the session may open, then sends `hello`; false when it ended instead. It was
 * registered before (S47), so that a revocation committed at any moment is either routed to it or
 * seen by the checks that follow, which read Postgres: the sign-in session not ended, the user a
 * member, not disabled, the organization not frozen. A refused session gets `revoked` and 4001,
 * never a `hello`. A `resumeAt` the organization never reached gets the current set (the client
 * replaces its own).
 */
const open = spannedGen("SessionActor.open", function* (session: Session) {
  const { env, organizationId, userId, resumeAt } = session
  const { store, registry } = env
  const checked = yield* Effect.either(
    Effect.all(
      [
        store
          .session(organizationId, userId, resumeAt)
          .pipe(Effect.catchTag("Conflict", () => store.session(organizationId, userId))),
        sessionEnded(env.sessions, session.sessionId)
      ],
      { concurrency: 2 }
    )
  )
  if (Either.isLeft(checked)) {
    send(session, { type: "error", code: "unavailable", message: "Cannot load the session; reconnect later" })
    close(session, CloseCode.tryAgainLater, "unavailable")
    finish(session)
    return false
  }
  const [first, ended] = checked.right
  const loaded = registry.fanOut.loaded(first)
  const refused = session.revoking ?? ended ?? loaded.revoked
  if (refused !== undefined) {
    yield* end(session, refused)
    return false
  }
  adopt(session, loaded)
  // An event routed before the registration found no one: catch up now.
  if ((registry.latestRevision(organizationId) ?? -1n) > session.held.revision) session.refresh()
  registry.counters.opened += 1
  registry.counters.snapshots += 1
  session.opened = true
  sendText(session, hello(session))
  registry.expireAt(session, session.claims.sessionExpiresAt)
  return true
})

const hasWork = (session: Session) =>
  !session.ended && (session.revoking !== undefined || session.drained || (session.inbox?.length ?? 0) > 0)

/** Everything the session has to do now, one thing at a time; the fiber ends when nothing is left. */
const work = (session: Session): Effect.Effect<void> =>
  Effect.gen(function* () {
    if (!session.opened && !session.ended && !(yield* open(session))) return
    while (!session.ended) {
      if (session.revoking !== undefined) return yield* end(session, session.revoking)
      if (!session.socket.isOpen()) return finish(session)
      if (session.drained) {
        session.drained = false
        yield* resync(session)
        continue
      }
      const inbound = session.inbox?.shift()
      if (inbound === undefined) {
        session.inbox = undefined
        return
      }
      yield* dispatch(session, inbound)
    }
  }).pipe(
    Effect.catchAllCause((cause) =>
      Effect.logError("live: session actor failed", cause).pipe(
        Effect.zipRight(
          Effect.sync(() => {
            close(session, CloseCode.internalError, "session ended")
            finish(session)
          })
        )
      )
    ),
    Effect.ensuring(
      Effect.sync(() => {
        session.busy = false
        session.fiber = undefined
        session.env.registry.actorsRunning -= 1
        if (hasWork(session)) schedule(session)
      })
    )
  )

/** Starts the session's fiber unless it is running or the session ended. */
const schedule = (session: Session) => {
  if (session.busy || session.ended) return
  session.busy = true
  session.env.registry.actorsRunning += 1
  const fiber = session.env.runFork(work(session))
  if (session.busy) session.fiber = fiber
}

/** What every actor of this node shares; `runFork` runs their fibers (in the server's scope). */
export const makeActorEnv = (runFork: RunFork) =>
  Effect.gen(function* () {
    const env: ActorEnv = {
      store: yield* PermissionStore,
      registry: yield* SessionRegistry,
      sessions: yield* Sessions,
      clock: yield* Effect.clock,
      runFork,
      schedule
    }
    return env
  })

/** A new connection's session: registered at once, then opened by its actor. */
export const startSession = (
  env: ActorEnv,
  options: {
    readonly connectionId: number
    readonly socket: LiveSocket
    readonly claims: TicketClaims
    readonly resumeAt: string | undefined
  }
) => {
  const session = new Session(options.connectionId, options.claims, options.socket, env, options.resumeAt)
  env.registry.register(session, [])
  schedule(session)
  return session
}

/**
 * A client frame: false when the client has too many frames queued (the caller answers
 * `rate_limited`). An idle actor with nothing queued answers what it can at once, on the caller's
 * stack (a ping, a check from memory); its fiber starts only for what must wait.
 */
export const receive = (session: Session, inbound: Inbound) => {
  if (session.ended) return true
  if (inbound._tag === "Frame" && session.opened && !session.busy && (session.inbox?.length ?? 0) === 0) {
    const message = admit(session, inbound.text)
    if (message === undefined) return true
    session.inbox = [{ _tag: "Admitted", message }]
    schedule(session)
    return true
  }
  session.inbox ??= []
  const { inbox } = session
  if (inbox.length >= LiveLimits.mailbox) return false
  inbox.push(inbound)
  schedule(session)
  return true
}

/** The socket's send buffer drained: a client that was behind gets its `hello`. */
export const drained = (session: Session) => {
  if (!session.stuck || session.ended) return
  session.drained = true
  schedule(session)
}

/** The socket closed: the session is unregistered and its actor, if running, interrupted. */
export const socketClosed = (session: Session) => {
  const running = session.ended ? undefined : session.fiber
  finish(session)
  if (running !== undefined) session.env.runFork(Fiber.interrupt(running))
}
