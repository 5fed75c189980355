/**
 * What the live-session actor tests share: a fake socket that records frames, a permission store
 * and sign-in sessions whose answers the test sets, and helpers to start actors on them.
 */
import { Deferred, Duration, Effect, Layer, Runtime, TestClock } from "effect"
import type { RunFork } from "../../src/actors/Deadlines.ts"
import type { LiveSocket, Session } from "../../src/actors/SessionActor.ts"
import { makeActorEnv, receive, socketClosed, startSession } from "../../src/actors/SessionActor.ts"
import { type Registry, SessionRegistry } from "../../src/actors/SessionRegistry.ts"
import { Conflict } from "../../src/rpc/Errors.ts"
import { LiveLimits } from "../../src/rpc/LiveProtocol.ts"
import { PermissionStore, type SessionSnapshot } from "../../src/services/PermissionStore.ts"
import { Sessions } from "../../src/services/Sessions.ts"

/** The actor's limits, as the tests use them. */
export const Limits = {
  mailbox: LiveLimits.mailbox,
  burst: LiveLimits.burst,
  floodClose: LiveLimits.floodClose,
  softBuffer: LiveLimits.softBufferBytes,
  hardBuffer: LiveLimits.hardBufferBytes,
  stuckFor: Duration.millis(LiveLimits.stuckMs),
  recomputeEvery: Duration.millis(LiveLimits.recomputeEveryMs)
}

export const claims = {
  userId: "u1",
  sessionId: "s1",
  organizationId: "o1",
  sessionExpiresAt: Date.now() + 3_600_000
}

export const snapshot = (
  revision: number,
  permissions: Array<string>,
  extra: Partial<SessionSnapshot> = {}
): SessionSnapshot => ({
  access: "ok",
  revision: String(revision),
  permissions,
  scoped: {},
  scopedDenied: {},
  roles: ["member"],
  roleIds: ["r1"],
  ...extra
})

/**
 * A socket that records what is sent, with a send buffer the test sets. Closing it tells the
 * session, as the transport does.
 */
export const fakeSocket = () => {
  const sent: Array<Record<string, unknown>> = []
  const state = {
    open: true,
    buffered: 0,
    closedWith: undefined as number | undefined,
    session: undefined as Session | undefined
  }
  const socket: LiveSocket = {
    isOpen: () => state.open,
    send: (text) => {
      sent.push(JSON.parse(text))
    },
    bufferedAmount: () => state.buffered,
    close: (code) => {
      if (!state.open) return
      state.open = false
      state.closedWith = code
      if (state.session !== undefined) socketClosed(state.session)
    }
  }
  return { socket, sent, state }
}

/**
 * A permission store whose answers the test sets, counting the loads; `gate` can hold loads back.
 * Like the real one, it refuses a revision the organization has not reached.
 */
export const fakeStore = (initial: SessionSnapshot) => {
  const current = {
    value: initial,
    /** Whether checks are answered at once (`checkNow`), as when the node's memory holds the revision. */
    fromMemory: false,
    /** Answers for particular users, instead of `value`. */
    byUser: new Map<string, SessionSnapshot>(),
    loads: 0,
    gate: undefined as Deferred.Deferred<void> | undefined,
    /** Why the sign-in session ended, once it has. */
    ended: undefined as string | undefined
  }
  const unused = () => Effect.die("unused")
  const sessions = Layer.succeed(
    Sessions,
    Sessions.of({
      hasEnded: () => Effect.sync(() => current.ended !== undefined),
      revokedAmong: (ids) =>
        Effect.sync(() => (current.ended === undefined ? [] : ids.map((id) => ({ id, reason: current.ended! })))),
      start: unused,
      rotate: unused,
      list: unused,
      revoke: unused,
      revokeAll: unused,
      absoluteExpiry: unused,
      revokedWithin: unused
    })
  )
  const permissionStore = Layer.succeed(
    PermissionStore,
    PermissionStore.of({
      session: (_organizationId, userId, minRevision) =>
        Effect.gen(function* () {
          current.loads += 1
          if (current.gate !== undefined) yield* Deferred.await(current.gate)
          if (minRevision !== undefined && BigInt(minRevision) > BigInt(current.value.revision)) {
            return yield* new Conflict({ code: "revision_not_reached", message: `not at ${minRevision}` })
          }
          return current.byUser.get(userId) ?? current.value
        }),
      sessions: (_organizationId, userIds) =>
        Effect.gen(function* () {
          current.loads += 1
          if (current.gate !== undefined) yield* Deferred.await(current.gate)
          return userIds.map((userId) => current.byUser.get(userId) ?? current.value)
        }),
      checkNow: ({ permission }) =>
        current.fromMemory
          ? {
              member: true,
              allowed: current.value.permissions.includes(permission),
              reason: "test, from memory",
              revision: current.value.revision
            }
          : undefined,
      checkManyNow: () => undefined,
      check: ({ permission }) =>
        Effect.succeed({
          member: true,
          allowed: current.value.permissions.includes(permission),
          reason: "test",
          revision: current.value.revision
        }),
      checkMany: () => Effect.die("unused"),
      explain: () => Effect.die("unused"),
      effective: () => Effect.die("unused")
    })
  )
  return { current, layer: Layer.merge(permissionStore, sessions) }
}

/** Lets every forked fiber run until it waits (no clock involved). */
export const settle = Effect.gen(function* () {
  for (let i = 0; i < 50; i++) yield* Effect.yieldNow()
})

/** Starts a session's actor on `store`, on a fake socket, as the transport does. */
export const open = (
  store: ReturnType<typeof fakeStore>,
  options: {
    readonly connectionId?: number
    readonly claims?: typeof claims
    readonly resumeAt?: string
    /** Counts the fibers the actor starts. */
    readonly forks?: { count: number }
  } = {}
) =>
  Effect.gen(function* () {
    const { socket, sent, state } = fakeSocket()
    const fork = Runtime.runFork(yield* Effect.runtime<never>())
    const runFork: RunFork = (effect) => {
      if (options.forks !== undefined) options.forks.count += 1
      return fork(effect)
    }
    const env = yield* makeActorEnv(runFork).pipe(Effect.provide(store.layer))
    const session = startSession(env, {
      connectionId: options.connectionId ?? 1,
      socket,
      claims: options.claims ?? claims,
      resumeAt: options.resumeAt
    })
    state.session = session
    return { socket, sent, state, session, receive: (text: string) => receive(session, { _tag: "Frame", text }) }
  })

export const start = (initial: SessionSnapshot, resumeAt?: string) =>
  Effect.gen(function* () {
    const store = fakeStore(initial)
    const registry = yield* SessionRegistry
    const opened = yield* open(store, resumeAt === undefined ? {} : { resumeAt })
    // Let it load and register.
    yield* settle
    const handle = () => [...registry.bySession("s1")][0]!
    /** The socket closes (the client went away). */
    const close = Effect.sync(() => socketClosed(opened.session))
    return { ...opened, store, registry: registry as Registry, handle, close }
  })

/** The end of the current recomputation interval: a change held back until then is applied. */
export const nextInterval = TestClock.adjust(LiveLimits.recomputeEveryMs).pipe(Effect.zipRight(settle))

export const RegistryLive = SessionRegistry.layer
