/**
 * The session registry: this node's live sessions, indexed by session, user, organization and
 * role, so an event reaches only the actors it affects without a scan of all sessions. Entries are
 * added when an actor starts and removed in its finalizer; an index entry never outlives its actor.
 */
import { type Clock, Context, Deferred, Effect, Exit, FiberId, FiberSet, Layer } from "effect"
import type { RevokedReason } from "../rpc/LiveProtocol.ts"
import { Deadlines, type RunFork } from "./Deadlines.ts"
import { FanOut } from "./FanOut.ts"
import { type Session, tooSlow } from "./Session.ts"

/** What the router can ask of a live session's actor. Both are cheap and idempotent. */
export interface SessionHandle {
  readonly connectionId: number
  readonly sessionId: string
  readonly userId: string
  readonly organizationId: string
  /** Recompute the permission set (requests coalesce into one recomputation). */
  readonly refresh: () => void
  /** End the session: send `revoked`, then close. */
  readonly revoke: (reason: RevokedReason) => void
}

const add = <K, V>(index: Map<K, Set<V>>, key: K, value: V) => {
  const set = index.get(key)
  if (set === undefined) index.set(key, new Set([value]))
  else set.add(value)
}

const remove = <K, V>(index: Map<K, Set<V>>, key: K, value: V) => {
  const set = index.get(key)
  if (set === undefined) return
  set.delete(value)
  if (set.size === 0) index.delete(key)
}

const none: ReadonlySet<SessionHandle> = new Set()

const memberKey = (userId: string, organizationId: string) => `${organizationId}\u0000${userId}`

export class Registry {
  private readonly sessions = new Map<string, Set<SessionHandle>>()
  private readonly users = new Map<string, Set<SessionHandle>>()
  private readonly members = new Map<string, Set<SessionHandle>>()
  private readonly organizations = new Map<string, Set<SessionHandle>>()
  private readonly roles = new Map<string, Set<SessionHandle>>()
  private readonly roleIds = new Map<SessionHandle, ReadonlyArray<string>>()

  private readonly revisions = new Map<string, bigint>()

  /** Loads changed sets once per user and hands them to the sessions (FanOut.ts). */
  readonly fanOut: FanOut
  /** Sessions ending at their absolute expiry, and clients behind for too long: one timer wheel each. */
  private readonly expiries: Deadlines<Session>
  private readonly stuck: Deadlines<Session>

  constructor(
    readonly runFork: RunFork,
    readonly clock: Clock.Clock
  ) {
    this.fanOut = new FanOut(this, clock, runFork)
    this.expiries = new Deadlines(100, clock, runFork, (session) => session.revoke("session_expired"))
    this.stuck = new Deadlines(100, clock, runFork, tooSlow)
  }

  /** The session ends at `at` at the latest. */
  expireAt(session: Session, at: number) {
    this.expiries.add(session, at - 100)
  }

  /** A client behind since now is closed at `at` unless it drains first (`caughtUp`). */
  stuckUntil(session: Session, at: number) {
    this.stuck.add(session, at)
  }

  caughtUp(session: Session) {
    this.stuck.remove(session)
  }

  /** Sessions waiting on a timer (expiry or a slow client): zero once every session has gone. */
  get timers() {
    return this.expiries.size + this.stuck.size
  }

  /** The newest revision this node's router has routed for an organization (set by the router). */
  noteRevision(organizationId: string, revision: bigint) {
    if ((this.revisions.get(organizationId) ?? -1n) < revision) this.revisions.set(organizationId, revision)
    if (this.revisions.size > 100_000) this.revisions.delete(this.revisions.keys().next().value!)
  }

  latestRevision(organizationId: string): bigint | undefined {
    return this.revisions.get(organizationId)
  }

  /**
   * Recomputations in flight on this node at once. A fan-out to thousands of sessions waits here,
   * in memory, instead of queueing on the database pool until its acquire timeout fails them.
   */
  readonly recomputations = Effect.unsafeMakeSemaphore(4)

  /** Loads waiting for a permit, by key: whoever asks for the same key meanwhile shares the result. */
  private readonly waiting = new Map<string, Deferred.Deferred<unknown, unknown>>()

  /**
   * Runs `load` under a recomputation permit, shared by every caller asking for the same key
   * while it waits for its permit. A caller never gets a result read before it asked: once a load
   * has started reading, the next caller starts a new one. One role change reaching the 50 sessions
   * of one user thus costs one load, not 50. The load runs on its own fiber, so a caller that is
   * interrupted (its socket closed) does not cancel it for the others. Each load is one span,
   * `SessionRegistry.load` (the callers sharing it add none: a fan-out's callers are many).
   */
  shared<A, E>(key: string, load: Effect.Effect<A, E>): Effect.Effect<A, E> {
    return Effect.suspend(() => {
      const pending = this.waiting.get(key) as Deferred.Deferred<A, E> | undefined
      if (pending !== undefined) return Deferred.await(pending)
      const deferred = Deferred.unsafeMake<A, E>(FiberId.none)
      this.waiting.set(key, deferred as Deferred.Deferred<unknown, unknown>)
      const start = Effect.sync(() => {
        this.waiting.delete(key)
        this.counters.loads += 1
      })
      const traced = Effect.withSpan(load, "SessionRegistry.load", { attributes: { key } })
      const run = this.recomputations
        .withPermits(1)(start.pipe(Effect.zipRight(Effect.exit(traced))))
        .pipe(
          Effect.flatMap((exit) => Deferred.done(deferred, exit)),
          Effect.onInterrupt(() =>
            Effect.sync(() => {
              if (this.waiting.get(key) === deferred) this.waiting.delete(key)
            }).pipe(Effect.zipRight(Deferred.done(deferred, Exit.interrupt(FiberId.none))))
          )
        )
      return Effect.forkDaemon(run).pipe(Effect.zipRight(Deferred.await(deferred)))
    })
  }

  /** Actors whose fiber is running now (an idle session has none). */
  actorsRunning = 0

  /** Counters for /metrics and the benchmarks. */
  readonly counters = {
    recomputations: 0,
    loads: 0,
    pushes: 0,
    snapshots: 0,
    revoked: 0,
    opened: 0,
    closed: 0
  }

  get size() {
    return this.roleIds.size
  }

  /**
   * How many (key, session) entries the indexes hold in all: each session is in one entry per
   * index and per role it depends on; zero when no session is registered.
   */
  get indexEntries() {
    let total = 0
    for (const index of [this.sessions, this.users, this.members, this.organizations, this.roles]) {
      for (const set of index.values()) total += set.size
    }
    return total
  }

  register(handle: SessionHandle, roleIds: ReadonlyArray<string>) {
    add(this.sessions, handle.sessionId, handle)
    add(this.users, handle.userId, handle)
    add(this.members, memberKey(handle.userId, handle.organizationId), handle)
    add(this.organizations, handle.organizationId, handle)
    this.roleIds.set(handle, [])
    this.setRoles(handle, roleIds)
  }

  /** Re-indexes the session under the roles its permissions now depend on (the list is kept, not copied). */
  setRoles(handle: SessionHandle, roleIds: ReadonlyArray<string>) {
    const before = this.roleIds.get(handle)
    if (before === undefined || before === roleIds) return
    const was = new Set(before)
    const now = new Set(roleIds)
    for (const role of was) if (!now.has(role)) remove(this.roles, role, handle)
    for (const role of now) if (!was.has(role)) add(this.roles, role, handle)
    this.roleIds.set(handle, roleIds)
  }

  unregister(handle: SessionHandle) {
    const roleIds = this.roleIds.get(handle)
    if (roleIds === undefined) return
    for (const role of roleIds) remove(this.roles, role, handle)
    remove(this.sessions, handle.sessionId, handle)
    remove(this.users, handle.userId, handle)
    remove(this.members, memberKey(handle.userId, handle.organizationId), handle)
    remove(this.organizations, handle.organizationId, handle)
    this.roleIds.delete(handle)
    this.expiries.remove(handle as Session)
    this.stuck.remove(handle as Session)
  }

  bySession(sessionId: string): ReadonlySet<SessionHandle> {
    return this.sessions.get(sessionId) ?? none
  }

  byUser(userId: string): ReadonlySet<SessionHandle> {
    return this.users.get(userId) ?? none
  }

  byOrganization(organizationId: string): ReadonlySet<SessionHandle> {
    return this.organizations.get(organizationId) ?? none
  }

  byRole(roleId: string): ReadonlySet<SessionHandle> {
    return this.roles.get(roleId) ?? none
  }

  /** The user's sessions in one organization. */
  byUserIn(userId: string, organizationId: string): ReadonlySet<SessionHandle> {
    return this.members.get(memberKey(userId, organizationId)) ?? none
  }

  organizationIds(): ReadonlyArray<string> {
    return [...this.organizations.keys()]
  }

  all(): ReadonlyArray<SessionHandle> {
    return [...this.roleIds.keys()]
  }
}

export class SessionRegistry extends Context.Tag("app/SessionRegistry")<SessionRegistry, Registry>() {
  /** The registry, its timers and fan-out running in the layer's scope. */
  static readonly layer = Layer.scoped(
    SessionRegistry,
    Effect.gen(function* () {
      const runFork = yield* FiberSet.makeRuntime<never>()
      return new Registry(runFork, yield* Effect.clock)
    })
  )
}
