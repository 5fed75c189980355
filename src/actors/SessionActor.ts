/**
 * One live session: a fiber with a bounded mailbox and private state (user, organization, session,
 * roles, permission set, revision). It handles one message at a time, so it needs no locks:
 * - client frames (`check`, `await`, `ping`), rate limited per connection;
 * - `refresh` requests from the router, coalesced: however many arrive while it works or within
 *   `Limits.recomputeEvery` of its last recomputation, it recomputes once more at most, from the
 *   permission store at the current revision, and pushes a diff only when something changed
 *   (otherwise its revision just moves on);
 * - `revoke`: it sends `revoked` and closes with 4001;
 * - `drain`: a client that fell behind (send buffer over the soft limit) was not sent diffs; once it
 *   drains it gets one fresh `hello`. A client whose buffer passes the hard limit, or that stays
 *   behind for too long, is closed with 4002.
 * The actor's revision never goes backwards. Interrupting the fiber (socket closed) unregisters it.
 */
import { Clock, Duration, Effect, Either, Fiber, Option, Queue } from "effect"
import {
  type ClientMessage,
  CloseCode,
  decodeClientMessage,
  encodeServerMessage,
  type RevokedReason,
  type ServerMessage
} from "../rpc/LiveProtocol.ts"
import type { SessionSnapshot } from "../services/PermissionStore.ts"
import { PermissionStore } from "../services/PermissionStore.ts"
import type { TicketClaims } from "../services/Realtime.ts"
import { type SessionHandle, SessionRegistry } from "./SessionRegistry.ts"

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
  | { readonly _tag: "Wake" }
  | { readonly _tag: "Drain" }

export const Limits = {
  /** Mailbox size; client frames beyond it are answered `rate_limited` and dropped. */
  mailbox: 256,
  /** Client messages per second, sustained, and the burst allowed. */
  ratePerSecond: 20,
  burst: 40,
  /** Dropped messages after which a flooding client is closed (4003). */
  floodClose: 200,
  /** Above this many buffered bytes no diff is sent; the client gets a snapshot when it drains. */
  softBuffer: 64 * 1024,
  /** Above this many buffered bytes the client is closed (4002). */
  hardBuffer: 1024 * 1024,
  /** A client behind for longer than this is closed (4002). */
  stuckFor: Duration.seconds(30),
  /**
   * At most one recomputation per this interval: the first change is applied at once, the ones
   * that follow within the interval are applied together at its end (a burst of 1,000 changes in a
   * second costs about ten recomputations per session, not 1,000).
   */
  recomputeEvery: Duration.millis(100)
}

interface State {
  revision: bigint
  permissions: ReadonlySet<string>
  scoped: ReadonlyMap<string, ReadonlySet<string>>
  scopedDenied: ReadonlyMap<string, ReadonlySet<string>>
  roles: ReadonlyArray<string>
  roleIds: ReadonlyArray<string>
}

const revokedFor = (access: SessionSnapshot["access"]): RevokedReason | undefined => {
  switch (access) {
    case "ok":
      return undefined
    case "not_member":
      return "member_removed"
    case "frozen":
      return "organization_frozen"
    case "disabled":
      return "user_disabled"
    case "no_organization":
      return "organization_deleted"
  }
}

const toSets = (scoped: Readonly<Record<string, ReadonlyArray<string>>>) =>
  new Map(Object.entries(scoped).map(([key, keys]) => [key, new Set(keys)] as const))

const toRecord = (scoped: ReadonlyMap<string, ReadonlySet<string>>) =>
  Object.fromEntries([...scoped].map(([key, keys]) => [key, [...keys].sort()]))

const minus = (a: ReadonlySet<string>, b: ReadonlySet<string>) => [...a].filter((key) => !b.has(key)).sort()

const scopedDiff = (
  from: ReadonlyMap<string, ReadonlySet<string>>,
  to: ReadonlyMap<string, ReadonlySet<string>>
): Record<string, ReadonlyArray<string>> => {
  const out: Record<string, ReadonlyArray<string>> = {}
  for (const [key, keys] of to) {
    const added = minus(keys, from.get(key) ?? new Set())
    if (added.length > 0) out[key] = added
  }
  return out
}

/**
 * Runs the actor of one connection until the session ends or the fiber is interrupted. `mailbox`
 * is filled by the transport (frames, drain) and by the handle (wake).
 */
export const runSessionActor = (options: {
  readonly connectionId: number
  readonly socket: LiveSocket
  readonly claims: TicketClaims
  readonly mailbox: Queue.Queue<Inbound>
  /** The revision the client last saw (`?revision=`), so the first snapshot is at least that. */
  readonly resumeAt: string | undefined
}) =>
  Effect.gen(function* () {
    const { connectionId, socket, claims, mailbox } = options
    const store = yield* PermissionStore
    const registry = yield* SessionRegistry

    let refreshPending = false
    let wakePending = false
    let lastRecompute = Number.NEGATIVE_INFINITY
    let throttled = false
    let revokeReason: RevokedReason | undefined
    let behind = false
    let behindTimer: Fiber.RuntimeFiber<void> | undefined
    let tokens = Limits.burst
    let lastRefill = yield* Clock.currentTimeMillis
    let dropped = 0

    const wake = () => {
      if (wakePending) return
      wakePending = true
      mailbox.unsafeOffer({ _tag: "Wake" })
    }
    const handle: SessionHandle = {
      connectionId,
      sessionId: claims.sessionId,
      userId: claims.userId,
      organizationId: claims.organizationId,
      refresh: () => {
        refreshPending = true
        wake()
      },
      revoke: (reason) => {
        revokeReason ??= reason
        wake()
      }
    }

    const send = (message: ServerMessage) => {
      if (socket.isOpen()) socket.send(encodeServerMessage(message))
    }

    const end = (reason: RevokedReason) =>
      Effect.sync(() => {
        registry.counters.revoked += 1
        send({ type: "revoked", reason })
        if (socket.isOpen()) socket.close(CloseCode.revoked, reason)
      })

    const tooSlow = Effect.sync(() => {
      if (socket.isOpen()) socket.close(CloseCode.tooSlow, "client too slow")
    })

    /** The session's state from the store, shared with this user's other sessions asking at once. */
    const snapshot = (organizationRevision?: string) =>
      registry.shared(
        `${claims.organizationId}/${claims.userId}/${organizationRevision ?? ""}`,
        store.session(claims.organizationId, claims.userId, organizationRevision)
      )

    const hello = (state: State): ServerMessage => ({
      type: "hello",
      sessionId: claims.sessionId,
      userId: claims.userId,
      organizationId: claims.organizationId,
      roles: state.roles,
      permissions: [...state.permissions].sort(),
      scoped: toRecord(state.scoped),
      scopedDenied: toRecord(state.scopedDenied),
      revision: state.revision.toString()
    })

    const fromSnapshot = (s: SessionSnapshot): State => ({
      revision: BigInt(s.revision),
      permissions: new Set(s.permissions),
      scoped: toSets(s.scoped),
      scopedDenied: toSets(s.scopedDenied),
      roles: s.roles,
      roleIds: s.roleIds
    })

    // --- start: the first snapshot, or the reason there is none -------------------------------
    // The first snapshot is loaded directly: opens arrive spread out (a ticket each), so there is
    // little to share, and they must not queue behind a fan-out's recomputations.
    const first = yield* Effect.either(store.session(claims.organizationId, claims.userId, options.resumeAt))
    if (Either.isLeft(first)) {
      send({ type: "error", code: "unavailable", message: "Cannot load the session; reconnect later" })
      if (socket.isOpen()) socket.close(CloseCode.goingAway, "unavailable")
      return
    }
    const refused = revokedFor(first.right.access)
    if (refused !== undefined) return yield* end(refused)
    let state = fromSnapshot(first.right)

    registry.register(handle, state.roleIds)
    // An event routed between the snapshot and the registration found no one: catch up now.
    if ((registry.latestRevision(claims.organizationId) ?? -1n) > state.revision) handle.refresh()
    registry.counters.opened += 1
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        registry.unregister(handle)
        registry.counters.closed += 1
      })
    )
    registry.counters.snapshots += 1
    send(hello(state))

    // The session ends at its absolute expiry at the latest.
    const untilExpiry = claims.sessionExpiresAt - (yield* Clock.currentTimeMillis)
    yield* Effect.forkScoped(
      Effect.sleep(Duration.millis(Math.max(0, untilExpiry))).pipe(
        Effect.andThen(() => handle.revoke("session_expired"))
      )
    )

    // --- the work ------------------------------------------------------------------------------
    /** Applies a newer snapshot: a diff if something changed and the client keeps up. */
    const apply = (next: SessionSnapshot) =>
      Effect.gen(function* () {
        const reason = revokedFor(next.access)
        if (reason !== undefined) {
          revokeReason ??= reason
          return
        }
        const revision = BigInt(next.revision)
        if (revision < state.revision) return
        const nextState = fromSnapshot(next)
        const added = minus(nextState.permissions, state.permissions)
        const removed = minus(state.permissions, nextState.permissions)
        // Only the resource-scoped changes that hold something go in the frame.
        const scopedChanges = Object.fromEntries(
          Object.entries({
            scopedAdded: scopedDiff(state.scoped, nextState.scoped),
            scopedRemoved: scopedDiff(nextState.scoped, state.scoped),
            scopedDeniedAdded: scopedDiff(state.scopedDenied, nextState.scopedDenied),
            scopedDeniedRemoved: scopedDiff(nextState.scopedDenied, state.scopedDenied)
          }).filter(([, keys]) => Object.keys(keys).length > 0)
        )
        const rolesChanged = nextState.roles.join("\n") !== state.roles.join("\n")
        if (nextState.roleIds.join("\n") !== state.roleIds.join("\n")) registry.setRoles(handle, nextState.roleIds)
        state = nextState
        const changed = added.length + removed.length + Object.keys(scopedChanges).length > 0
        if (!changed && !rolesChanged) return
        if (behind) return
        if (!socket.isOpen()) return
        const buffered = socket.bufferedAmount()
        if (buffered > Limits.hardBuffer) return yield* tooSlow
        if (buffered > Limits.softBuffer) {
          behind = true
          behindTimer = yield* Effect.forkScoped(Effect.sleep(Limits.stuckFor).pipe(Effect.zipRight(tooSlow)))
          return
        }
        registry.counters.pushes += 1
        // Only the role names changed (a rename): the whole state again, it is small.
        if (!changed) {
          registry.counters.snapshots += 1
          return send(hello(state))
        }
        send({
          type: "permissions",
          revision: state.revision.toString(),
          added,
          removed,
          ...scopedChanges
        })
      })

    const recompute = (atLeast?: string) =>
      Effect.gen(function* () {
        registry.counters.recomputations += 1
        yield* apply(yield* snapshot(atLeast))
      })

    const allowMessage = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      tokens = Math.min(Limits.burst, tokens + ((now - lastRefill) / 1000) * Limits.ratePerSecond)
      lastRefill = now
      if (tokens < 1) return false
      tokens -= 1
      return true
    })

    const onClientMessage = (message: ClientMessage) =>
      Effect.gen(function* () {
        switch (message.type) {
          case "ping":
            return send({ type: "pong" })
          case "check": {
            const answer = yield* store
              .check({
                organizationId: claims.organizationId,
                userId: claims.userId,
                permission: message.permission,
                resource: message.resource,
                minRevision: state.revision.toString()
              })
              .pipe(Effect.either)
            if (Either.isLeft(answer)) {
              return send({
                type: "error",
                code: "unavailable",
                message: "Cannot decide right now; denied",
                id: message.id
              })
            }
            if (answer.right.blocked === true || !answer.right.member) handle.refresh()
            return send({
              type: "check.result",
              id: message.id,
              allowed: answer.right.allowed,
              reason: answer.right.reason,
              revision: answer.right.revision
            })
          }
          case "await": {
            if (BigInt(message.revision) > state.revision) {
              const outcome = yield* Effect.either(recompute(message.revision))
              if (Either.isLeft(outcome)) {
                const code = outcome.left._tag === "Conflict" ? "revision_not_reached" : "unavailable"
                return send({
                  type: "error",
                  code,
                  message:
                    code === "revision_not_reached"
                      ? `The organization has not reached revision ${message.revision}`
                      : "Cannot load the session right now",
                  id: message.id
                })
              }
            }
            return send({ type: "awaited", id: message.id, revision: state.revision.toString() })
          }
        }
      })

    const onFrame = (text: string) =>
      Effect.gen(function* () {
        if (!(yield* allowMessage)) {
          dropped += 1
          if (dropped >= Limits.floodClose) {
            if (socket.isOpen()) socket.close(CloseCode.flooding, "too many messages")
            return
          }
          return send({ type: "error", code: "rate_limited", message: "Too many messages; this one was dropped" })
        }
        const decoded = decodeClientMessage(text)
        if (Either.isLeft(decoded)) {
          return send({
            type: "error",
            code: "invalid_message",
            message: "Not a valid message; see docs/live-protocol.md"
          })
        }
        yield* onClientMessage(decoded.right)
      })

    while (socket.isOpen()) {
      const message = yield* Queue.take(mailbox)
      switch (message._tag) {
        case "Frame":
          yield* onFrame(message.text)
          break
        case "Binary":
          send({ type: "error", code: "invalid_message", message: "Send JSON text frames" })
          break
        case "Drain":
          if (behind && socket.isOpen() && socket.bufferedAmount() <= Limits.softBuffer) {
            behind = false
            if (behindTimer !== undefined) yield* Fiber.interrupt(behindTimer)
            behindTimer = undefined
            // What it missed, in one frame, at the newest revision.
            const fresh = yield* Effect.either(snapshot())
            if (Either.isRight(fresh)) {
              if (revokedFor(fresh.right.access) !== undefined) revokeReason ??= revokedFor(fresh.right.access)
              else if (BigInt(fresh.right.revision) >= state.revision) state = fromSnapshot(fresh.right)
            }
            registry.counters.snapshots += 1
            if (revokeReason === undefined) send(hello(state))
          }
          break
        case "Wake":
          wakePending = false
          if (refreshPending && revokeReason === undefined) {
            const now = yield* Clock.currentTimeMillis
            const wait = lastRecompute + Duration.toMillis(Limits.recomputeEvery) - now
            if (wait > 0) {
              if (!throttled) {
                throttled = true
                yield* Effect.forkScoped(
                  Effect.sleep(Duration.millis(wait)).pipe(
                    Effect.andThen(() => {
                      throttled = false
                      wake()
                    })
                  )
                )
              }
              break
            }
            refreshPending = false
            lastRecompute = now
            const outcome = yield* Effect.either(recompute())
            // The store could not answer: try again shortly rather than keep a stale set.
            if (Either.isLeft(outcome)) {
              yield* Effect.forkScoped(Effect.sleep(Duration.seconds(1)).pipe(Effect.andThen(() => handle.refresh())))
            }
          }
          break
      }
      if (revokeReason !== undefined) return yield* end(revokeReason)
    }
  }).pipe(Effect.scoped)

/**
 * The mailbox of a new connection. Client frames fill at most `Limits.mailbox` places; the rest is
 * headroom for the actor's own signals (one wake, one drain at a time), which are never dropped.
 */
export const makeMailbox = Queue.bounded<Inbound>(Limits.mailbox + 4)

/** Offers a client frame without waiting; false when the client has too many frames queued. */
export const offerFrame = (mailbox: Queue.Queue<Inbound>, inbound: Inbound) =>
  Option.getOrElse(mailbox.unsafeSize(), () => Number.POSITIVE_INFINITY) < Limits.mailbox &&
  mailbox.unsafeOffer(inbound)
