/**
 * The revision cache's entries (RevisionCache.ts): per organization, its status, policy and some
 * users' standing exactly as they were at the entry's revision (its watermark), with the history
 * of what each recent revision changed. Bounded: at most MAX_ORGANIZATIONS organizations and
 * MAX_USERS users in all, the least recently used organization evicted first.
 *
 * The feed moves a watermark in place, one complete revision at a time, when the revision changed
 * only some users' standing (they are dropped, to be loaded again); anything else marks the entry
 * stale, and the next read catches it up from Postgres. Waiters for a revision are woken when the
 * watermark moves.
 */
import { Deferred, type Duration, Effect, FiberId } from "effect"
import type { EffectivePermissions } from "../../services/PermissionStore.ts"
import type { Policy, Standing } from "../../domain/Policy.ts"
import { type Change, changesBetween, type RecordedEvent } from "../../domain/PolicyHistory.ts"
import type { Standings } from "./PermissionReader.ts"

export const MAX_ORGANIZATIONS = 10_000
export const MAX_USERS = 200_000
/** Revisions of history kept per organization to validate effective sets computed earlier. */
export const HISTORY = 512

export const stranger: Standing = { member: false, enabled: false, assignments: [] }

export interface UserEntry extends Standing {
  readonly loadedAt: number
  effective?: EffectivePermissions
}

export interface OrgEntry {
  readonly organizationId: string
  revision: bigint
  readonly frozen: boolean
  readonly policy: Policy
  readonly loadedAt: number
  readonly users: Map<string, UserEntry>
  history: Array<Change>
  /** The feed saw a change it cannot apply in memory: the entry stays at its revision until a read catches it up. */
  stale: boolean
  /** The feed has moved this entry: a read behind it may wait a moment for the feed rather than read. */
  followed: boolean
}

export class OrgEntries {
  private readonly orgs = new Map<string, OrgEntry>()
  private users = 0
  /** Per organization, woken whenever its watermark moves. */
  private readonly signals = new Map<string, Deferred.Deferred<void>>()

  constructor(private readonly ttlMs: number) {}

  get(organizationId: string) {
    return this.orgs.get(organizationId)
  }

  get size() {
    return { organizations: this.orgs.size, users: this.users }
  }

  fresh(entry: { readonly loadedAt: number }, now: number) {
    return now - entry.loadedAt <= this.ttlMs
  }

  /** The entry, if it holds every user at `atLeast` or later, within its lifetime. */
  answerable(organizationId: string, userIds: ReadonlyArray<string>, atLeast: bigint, now: number) {
    const entry = this.orgs.get(organizationId)
    if (entry === undefined || entry.revision < atLeast || !this.fresh(entry, now)) return undefined
    for (const id of userIds) {
      const user = entry.users.get(id)
      if (user === undefined || !this.fresh(user, now)) return undefined
    }
    this.touch(organizationId, entry)
    return entry
  }

  addUsers(entry: OrgEntry, standings: Standings, userIds: ReadonlyArray<string>, now: number) {
    const installed = this.orgs.get(entry.organizationId) === entry
    for (const id of userIds) {
      if (installed && !entry.users.has(id)) this.users += 1
      entry.users.set(id, { ...(standings.users.get(id) ?? stranger), loadedAt: now })
    }
    this.evict()
  }

  /** Replaces the organization's entry. */
  install(entry: OrgEntry) {
    this.drop(entry.organizationId)
    this.orgs.set(entry.organizationId, entry)
    this.users += entry.users.size
    this.evict()
    this.signal(entry.organizationId)
  }

  drop(organizationId: string) {
    const entry = this.orgs.get(organizationId)
    if (entry === undefined) return
    this.users -= entry.users.size
    this.orgs.delete(organizationId)
  }

  /** One complete revision from the feed (`undefined`: not all its events were seen). */
  apply(organizationId: string, revision: bigint, events: ReadonlyArray<RecordedEvent> | undefined) {
    const entry = this.orgs.get(organizationId)
    if (entry === undefined || entry.stale || revision <= entry.revision) return
    const change =
      events !== undefined && revision === entry.revision + 1n
        ? changesBetween(events, entry.revision, revision)?.[0]
        : undefined
    if (change === undefined || change.all) {
      entry.stale = true
      return
    }
    for (const user of change.users) this.forget(entry, user)
    entry.revision = revision
    entry.followed = true
    entry.history.push(change)
    if (entry.history.length > HISTORY) entry.history = entry.history.slice(-HISTORY)
    this.signal(organizationId)
  }

  forgetUser(userId: string) {
    for (const entry of this.orgs.values()) this.forget(entry, userId)
  }

  staleAll() {
    for (const entry of this.orgs.values()) entry.stale = true
  }

  /** Returns when the organization's watermark moves, or after `timeout`. */
  moved(organizationId: string, timeout: Duration.Duration) {
    return Effect.suspend(() => {
      let waiting = this.signals.get(organizationId)
      if (waiting === undefined) {
        waiting = Deferred.unsafeMake<void>(FiberId.none)
        this.signals.set(organizationId, waiting)
      }
      return Deferred.await(waiting).pipe(Effect.timeout(timeout), Effect.ignore)
    })
  }

  private signal(organizationId: string) {
    const waiting = this.signals.get(organizationId)
    if (waiting === undefined) return
    this.signals.delete(organizationId)
    Deferred.unsafeDone(waiting, Effect.void)
  }

  /** Drops a user from an installed entry. */
  private forget(entry: OrgEntry, userId: string) {
    if (entry.users.delete(userId)) this.users -= 1
  }

  /** Marks the organization most recently used. */
  private touch(organizationId: string, entry: OrgEntry) {
    if (this.orgs.size < 2) return
    this.orgs.delete(organizationId)
    this.orgs.set(organizationId, entry)
  }

  /** Evicts the least recently used organizations past the budget (never the last one). */
  private evict() {
    while (this.orgs.size > 1 && (this.orgs.size > MAX_ORGANIZATIONS || this.users > MAX_USERS)) {
      this.drop(this.orgs.keys().next().value!)
    }
  }
}
