/**
 * The fan-out: how a change reaches the live sessions it affects on this node. The router asks
 * for a session to be refreshed; the fan-out
 * - paces per user and organization: the first change is loaded at once, those arriving within
 *   `recomputeEveryMs` of the last load together at its end (one timer wheel, no fiber per user);
 * - loads every user due in an organization in one call to the permission store, at least at the
 *   revision the router has seen there (answered from memory once this node's feed has it);
 * - hands each session its user's new set synchronously (`Session.take`): the set is shared by
 *   content (Interned.ts), and each distinct diff is computed and encoded once for every session
 *   that held the same set, then written to each socket from this one loop. No session's fiber
 *   wakes up for it.
 * A load that fails is tried again a second later.
 */
import { type Clock, Effect, Either } from "effect"
import type * as EffectiveSet from "../domain/EffectiveSet.ts"
import { diff, isEmptyDiff } from "../domain/EffectiveSet.ts"
import { encodeServerMessage, LiveLimits } from "../rpc/LiveProtocol.ts"
import type { SessionSnapshot } from "../services/PermissionStore.ts"
import { Deadlines, type RunFork } from "./Deadlines.ts"
import { Interned } from "./Interned.ts"
import { type Loaded, revokedBy, Session } from "./Session.ts"
import type { Registry } from "./SessionRegistry.ts"

const SEPARATOR = "\u0000"
const RETRY_MS = 1_000

/** The frame from one set to another, computed once per pair in a round. */
class Frames {
  private readonly byPair = new Map<EffectiveSet.EffectiveSet, Map<EffectiveSet.EffectiveSet, string | undefined>>()

  frameFor(next: EffectiveSet.EffectiveSet) {
    let from = this.byPair.get(next)
    if (from === undefined) {
      from = new Map()
      this.byPair.set(next, from)
    }
    const known = from
    return (before: EffectiveSet.EffectiveSet) => {
      if (known.has(before)) return known.get(before)
      const change = diff(before, next)
      const frame = isEmptyDiff(change) ? undefined : encodeServerMessage({ type: "permissions", ...change })
      known.set(before, frame)
      return frame
    }
  }
}

export class FanOut {
  readonly interned = new Interned()
  /** When each user (in an organization) was last loaded; a key with a timer is held back until then. */
  private readonly last = new Map<string, number>()
  private readonly held: Deadlines<string>
  /** Users to load now, by organization. */
  private readonly due = new Map<string, Set<string>>()
  private flushing = false

  constructor(
    private readonly registry: Registry,
    private readonly clock: Clock.Clock,
    private readonly runFork: RunFork
  ) {
    this.held = new Deadlines(10, clock, runFork, (key) => {
      const [organizationId, userId] = key.split(SEPARATOR) as [string, string]
      this.enqueue(organizationId, userId)
    })
  }

  request({ organizationId, userId }: { readonly organizationId: string; readonly userId: string }) {
    if (this.due.get(organizationId)?.has(userId)) return
    const key = `${organizationId}${SEPARATOR}${userId}`
    const last = this.last.get(key)
    const until = last === undefined ? 0 : last + LiveLimits.recomputeEveryMs
    if (until > this.clock.unsafeCurrentTimeMillis()) this.held.add(key, until)
    else this.enqueue(organizationId, userId)
  }

  /** Shared set and roles of a snapshot. */
  loaded(snapshot: SessionSnapshot): Loaded {
    return {
      revoked: revokedBy[snapshot.access],
      set: this.interned.set(snapshot),
      roleIds: this.interned.list(snapshot.roleIds)
    }
  }

  private enqueue(organizationId: string, userId: string) {
    const users = this.due.get(organizationId)
    if (users === undefined) this.due.set(organizationId, new Set([userId]))
    else users.add(userId)
    if (this.flushing) return
    this.flushing = true
    this.runFork(this.flush)
  }

  private readonly flush: Effect.Effect<void> = Effect.gen(this, function* () {
    // Let the router finish routing what it read: one load covers all of it.
    yield* Effect.yieldNow()
    while (this.due.size > 0) {
      const [organizationId, users] = this.due.entries().next().value!
      this.due.delete(organizationId)
      yield* this.load(organizationId, [...users])
    }
  }).pipe(
    Effect.ensuring(
      Effect.sync(() => {
        this.flushing = false
        if (this.due.size > 0) {
          this.flushing = true
          this.runFork(this.flush)
        }
      })
    )
  )

  private load(organizationId: string, userIds: ReadonlyArray<string>) {
    return Effect.suspend(() => {
      const { registry } = this
      const now = this.clock.unsafeCurrentTimeMillis()
      this.forgetOld(now)
      const users = userIds.filter((userId) => registry.byUserIn(userId, organizationId).size > 0)
      const first = users.length > 0 ? registry.byUserIn(users[0]!, organizationId).values().next().value : undefined
      if (!(first instanceof Session)) return Effect.void
      for (const userId of users) {
        const key = `${organizationId}${SEPARATOR}${userId}`
        this.last.set(key, now)
        // This load covers a change held back for later that the wheel has not served yet.
        this.held.remove(key)
      }
      registry.counters.loads += 1
      registry.counters.recomputations += users.length
      const atLeast = registry.latestRevision(organizationId)?.toString()
      const read = first.env.store.sessions(organizationId, users, atLeast)
      return Effect.either(registry.recomputations.withPermits(1)(read)).pipe(
        Effect.andThen((result) => {
          if (Either.isLeft(result)) {
            for (const userId of users) this.held.add(`${organizationId}${SEPARATOR}${userId}`, now + RETRY_MS)
            return
          }
          const frames = new Frames()
          result.right.forEach((snapshot, i) => {
            const next = this.loaded(snapshot)
            const frameFor = frames.frameFor(next.set)
            for (const handle of registry.byUserIn(users[i]!, organizationId)) {
              if (handle instanceof Session) handle.take(next, frameFor)
            }
          })
        })
      )
    })
  }

  /** Drops the pacing of users loaded longer ago than the interval: they may be loaded at once again. */
  private forgetOld(now: number) {
    if (this.last.size < 10_000) return
    for (const [key, at] of this.last) if (at + LiveLimits.recomputeEveryMs <= now) this.last.delete(key)
  }
}
