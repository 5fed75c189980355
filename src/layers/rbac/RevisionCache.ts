/**
 * The permission store's memory: per organization, everything needed to decide (its status, its
 * policy, the standing of the users asked about) exactly as it was at one revision, the entry's
 * *watermark*. Checks are answered from it:
 * - `minRevision` the watermark has reached: from memory, no round trip; one ahead waits for the
 *   watermark (or Postgres) briefly, else `revision_not_reached`;
 * - `latest` (default): one revision read per organization, shared by the checks that arrive while
 *   it waits to start (Coalesce.ts), so it reflects every commit before the check; then memory at
 *   that revision, or Postgres when the watermark is behind it;
 * - `cached`: the watermark, no round trip.
 * The watermark moves two ways. This node's feed (RevisionFeed.ts) applies each complete revision,
 * in order, that changed only some users' standing: their entries go, the watermark advances, in
 * memory. Any other change (roles, grants, catalog, status) or a gap marks the entry stale, and the
 * next read catches it up from Postgres in one snapshot: the events in between (Outbox.eventsSince)
 * say which users to drop and whether to reload the policy (loaded once per revision however many
 * readers need it). Users are loaded in one statement when the entry is at the database's revision.
 *
 * Bounded: at most MAX_ORGANIZATIONS organizations and MAX_USERS users in all, least recently used
 * evicted first; entries are reloaded ENTRY_TTL after they were loaded, never extended by reads.
 * Effective sets are also kept in the key-value store (Redis in production) with the revision they
 * were computed at, for other nodes; one is used only if no change since affects it.
 */
import { Clock, Context, Deferred, Duration, Effect, FiberId, Layer, Option, Schema } from "effect"
import { accessOf, dependsOnTime, effectiveOf, nothingHeld, type Policy, type Standing } from "../../domain/Policy.ts"
import { changesBetween, type RecordedEvent, unchangedSince } from "../../domain/PolicyHistory.ts"
import { Conflict } from "../../rpc/Errors.ts"
import { type KeyValueError, KeyValueStore } from "../../services/KeyValueStore.ts"
import { Outbox } from "../../services/Outbox.ts"
import type { Consistency, EffectivePermissions } from "../../services/PermissionStore.ts"
import { spannedGen } from "../../services/Span.ts"
import { coalesced } from "../Coalesce.ts"
import { HISTORY, OrgEntries, type OrgEntry, stranger, type UserEntry } from "./OrgEntries.ts"
import { PermissionReader } from "./PermissionReader.ts"

/** How long a loaded entry may be used at most, from when it was loaded. */
const ENTRY_TTL = Duration.minutes(5)
/** Beyond this many revisions behind, reload instead of reading the events in between. */
const MAX_CATCH_UP = 1_000
const MAX_CATCH_UP_EVENTS = 20 * MAX_CATCH_UP
/** How long a view waits for `minRevision` to be committed before refusing. */
const MIN_REVISION_WAIT = Duration.seconds(2)
const POLL = Duration.millis(50)
/** How long a `latest` view behind the database waits for the feed before catching up itself. */
const FEED_WAIT = Duration.millis(25)

/** Everything needed to decide for some users, at one revision. */
export interface View {
  readonly revision: string
  readonly frozen: boolean
  readonly policy: Policy
  /** The standing of one of the users the view was made for. */
  readonly user: (userId: string) => Standing
  /** The user's effective set at the view's revision: this node's memo, a shared one still valid, or computed. */
  readonly effective: (userId: string) => Effect.Effect<EffectivePermissions, KeyValueError>
}

export interface ViewRequest {
  readonly minRevision?: string | undefined
  readonly consistency?: Consistency | undefined
}

export interface RevisionCacheShape {
  /** The organization for these users, as fresh as asked (see above); none when there is no such organization. */
  readonly view: (
    organizationId: string,
    userIds: ReadonlyArray<string>,
    request?: ViewRequest
  ) => Effect.Effect<Option.Option<View>, Conflict>
  /**
   * The view at `minRevision` or later when this node's memory already holds it (what `view` would
   * answer without waiting or reading); undefined otherwise. Synchronous: for a live socket's checks.
   */
  readonly peek: (organizationId: string, userIds: ReadonlyArray<string>, minRevision: bigint) => View | undefined
  /** From the feed: every event of one revision of an organization (or `undefined`: not all were seen). */
  readonly applyRevision: (
    organizationId: string,
    revision: bigint,
    events: ReadonlyArray<RecordedEvent> | undefined
  ) => void
  /** From the feed: a user's status changed outside any organization's revisions; load them again. */
  readonly forgetUser: (userId: string) => void
  /** From the feed: events may have been lost; every entry catches up from Postgres at its next read. */
  readonly staleAll: () => void
  /** The organization's watermark on this node, if it holds it. */
  readonly watermark: (organizationId: string) => bigint | undefined
}

export class RevisionCache extends Context.Tag("app/layers/RevisionCache")<RevisionCache, RevisionCacheShape>() {}

/** What a view keeps of its entry. */
type Fixed = Pick<OrgEntry, "revision" | "frozen" | "policy" | "history">

const SharedEffective = Schema.parseJson(
  Schema.Struct({
    revision: Schema.String,
    permissions: Schema.Array(Schema.String),
    scoped: Schema.Record({ key: Schema.String, value: Schema.Array(Schema.String) }),
    scopedDenied: Schema.Record({ key: Schema.String, value: Schema.Array(Schema.String) })
  })
)
const decodeShared = Schema.decodeUnknownOption(SharedEffective)
const encodeShared = Schema.encodeSync(SharedEffective)
const sharedKey = (organizationId: string, userId: string) => `effective:${organizationId}:${userId}`

const UserId = Schema.Struct({ userId: Schema.String })
const userIdOf = (payload: unknown) => Option.getOrUndefined(Schema.decodeUnknownOption(UserId)(payload))?.userId

export const make = Effect.gen(function* () {
  const reader = yield* PermissionReader
  const outbox = yield* Outbox
  const kv = yield* KeyValueStore
  const clock = yield* Effect.clock
  /** Policies being loaded, by organization and revision: one load serves every reader at that revision. */
  const policies = new Map<string, Deferred.Deferred<Policy>>()
  const entries = new OrgEntries(Duration.toMillis(ENTRY_TTL))
  const latest = coalesced(reader.revision)

  /** The policy at the snapshot's revision, read once however many readers ask for it at once. */
  const policyAt = (organizationId: string, revision: bigint) =>
    Effect.suspend(() => {
      const key = `${organizationId}@${revision}`
      const pending = policies.get(key)
      if (pending !== undefined) return Deferred.await(pending)
      const deferred = Deferred.unsafeMake<Policy>(FiberId.none)
      policies.set(key, deferred)
      return reader.policy(organizationId).pipe(
        Effect.exit,
        Effect.tap((exit) => {
          policies.delete(key)
          return Deferred.done(deferred, exit)
        }),
        Effect.flatten
      )
    })

  /** What changed between two revisions, from the events in the current snapshot. */
  const changesSince = (organizationId: string, from: bigint, to: bigint) =>
    Effect.gen(function* () {
      if (to - from > BigInt(MAX_CATCH_UP)) return undefined
      const events = yield* outbox.eventsSince(organizationId, from.toString(), { limit: MAX_CATCH_UP_EVENTS })
      return changesBetween(
        events.flatMap((event) =>
          event.revision === null
            ? []
            : [{ revision: BigInt(event.revision), type: event.type, userId: userIdOf(event.payload) }]
        ),
        from,
        to
      )
    })

  /**
   * Catches the entry up to the database in one snapshot and loads the users: the events since
   * the entry's revision say which users it keeps and whether its policy holds. Installed unless
   * the feed moved the entry past the snapshot meanwhile; then this reader alone uses it.
   */
  const catchUp = (organizationId: string, userIds: ReadonlyArray<string>, now: number) =>
    Effect.gen(function* () {
      const read = yield* reader.snapshot(
        Effect.gen(function* () {
          const standings = yield* reader.standings(organizationId, userIds)
          if (Option.isNone(standings)) return undefined
          const revision = BigInt(standings.value.revision)
          const found = entries.get(organizationId)
          const base =
            found !== undefined && entries.fresh(found, now) && found.revision <= revision ? found : undefined
          const from = base?.revision
          const changes =
            base === undefined || from === undefined
              ? undefined
              : from === revision
                ? []
                : yield* changesSince(organizationId, from, revision)
          const policy =
            base !== undefined && changes !== undefined && !base.stale && !changes.some((change) => change.all)
              ? base.policy
              : yield* policyAt(organizationId, revision)
          return { standings: standings.value, revision, base, changes, policy }
        })
      )
      if (read === undefined) {
        entries.drop(organizationId)
        return undefined
      }
      const { standings, revision, base, changes, policy } = read
      const current = entries.get(organizationId)
      if (current !== undefined && current.revision === revision) {
        entries.addUsers(current, standings, userIds, now)
        return current
      }
      const carry = current !== undefined && current === base && changes !== undefined
      const entry: OrgEntry = {
        organizationId,
        revision,
        frozen: standings.status === "frozen",
        policy,
        loadedAt: carry && policy === current.policy ? current.loadedAt : now,
        users: carry ? new Map(current.users) : new Map(),
        history: carry ? [...current.history, ...changes.filter((c) => c.revision > current.revision)] : [],
        stale: false,
        followed: carry && current.followed
      }
      for (const change of carry ? changes : []) for (const user of change.users) entry.users.delete(user)
      if (entry.history.length > HISTORY) entry.history = entry.history.slice(-HISTORY)
      // The feed moved past this snapshot meanwhile: answer from it without installing it.
      if (current === undefined || current.revision < revision) entries.install(entry)
      entries.addUsers(entry, standings, userIds, now)
      return entry
    })

  /**
   * Loads the users at the database's revision, which is at least `atLeast`: one statement when
   * the entry is at that revision, else a catch-up.
   */
  const load = (organizationId: string, userIds: ReadonlyArray<string>, now: number) =>
    Effect.gen(function* () {
      const current = entries.get(organizationId)
      if (current !== undefined && entries.fresh(current, now)) {
        const standings = yield* reader.standings(organizationId, userIds)
        if (Option.isNone(standings)) {
          entries.drop(organizationId)
          return undefined
        }
        const entry = entries.get(organizationId)
        if (entry !== undefined && entry.revision === BigInt(standings.value.revision)) {
          entries.addUsers(entry, standings.value, userIds, now)
          return entry
        }
      }
      return yield* catchUp(organizationId, userIds, now)
    })

  /** At `target` or later: from memory once the watermark is there, else from the database once it is. */
  const atLeast = (organizationId: string, userIds: ReadonlyArray<string>, target: bigint) =>
    Effect.gen(function* () {
      const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(MIN_REVISION_WAIT)
      while (true) {
        const now = yield* Clock.currentTimeMillis
        const ready = entries.answerable(organizationId, userIds, target, now)
        if (ready !== undefined) return ready
        const head = yield* latest(organizationId)
        if (Option.isNone(head)) return undefined
        if (BigInt(head.value.revision) >= target) return yield* load(organizationId, userIds, now)
        if (now >= deadline) {
          return yield* new Conflict({
            code: "revision_not_reached",
            message: `The organization has not reached revision ${target}`
          })
        }
        yield* entries.moved(organizationId, POLL)
      }
    })

  /** Every commit before the call: the shared revision read, then memory at that revision or later. */
  const current = (organizationId: string, userIds: ReadonlyArray<string>) =>
    Effect.gen(function* () {
      const head = yield* latest(organizationId)
      if (Option.isNone(head)) return undefined
      const target = BigInt(head.value.revision)
      let now = yield* Clock.currentTimeMillis
      const ready = entries.answerable(organizationId, userIds, target, now)
      if (ready !== undefined) return ready
      const behind = entries.get(organizationId)
      if (behind?.followed === true && !behind.stale && entries.fresh(behind, now) && behind.revision < target) {
        // The feed brings a fresh commit's events within milliseconds: cheaper than catching up.
        yield* entries.moved(organizationId, FEED_WAIT)
        now = yield* Clock.currentTimeMillis
        const caughtUp = entries.answerable(organizationId, userIds, target, now)
        if (caughtUp !== undefined) return caughtUp
      }
      return yield* load(organizationId, userIds, now)
    })

  /** The user's effective set at the view's revision: this node's memo, a shared one still valid, or computed. */
  const effectiveIn = spannedGen(
    "RevisionCache.effective",
    function* (organizationId: string, at: Fixed, userId: string, user: UserEntry | undefined) {
      const revision = at.revision.toString()
      if (user === undefined || accessOf(at.frozen, user) !== "ok") {
        return { revision, ...nothingHeld } satisfies EffectivePermissions
      }
      const compute = Effect.map(Clock.currentTimeMillis, (now) => ({
        revision,
        ...effectiveOf(at.policy, userId, user.assignments, now)
      }))
      // Sets with an expiry in them depend on the time; they are computed, never shared.
      if (dependsOnTime(user.assignments)) return yield* compute
      const memo = user.effective
      if (memo !== undefined && unchangedSince(at.history, at.revision, BigInt(memo.revision), userId)) {
        return memo.revision === revision ? memo : { ...memo, revision }
      }
      const shared = Option.flatMap(yield* kv.get(sharedKey(organizationId, userId)), decodeShared)
      let result: EffectivePermissions
      if (Option.isSome(shared) && unchangedSince(at.history, at.revision, BigInt(shared.value.revision), userId)) {
        result = { ...shared.value, revision }
      } else {
        result = yield* compute
        yield* kv.set(sharedKey(organizationId, userId), encodeShared(result), ENTRY_TTL)
      }
      if (user.effective === undefined || BigInt(user.effective.revision) < at.revision) user.effective = result
      return result
    }
  )

  /** A view fixed when it is made: the entry may move on afterwards, the view does not. */
  const toView = (organizationId: string, entry: OrgEntry, userIds: ReadonlyArray<string>): View => {
    const at: Fixed = { revision: entry.revision, frozen: entry.frozen, policy: entry.policy, history: entry.history }
    const users = new Map<string, UserEntry | undefined>()
    for (const id of userIds) users.set(id, entry.users.get(id))
    return {
      revision: at.revision.toString(),
      frozen: at.frozen,
      policy: at.policy,
      user: (userId) => users.get(userId) ?? stranger,
      effective: (userId) => effectiveIn(organizationId, at, userId, users.get(userId))
    }
  }

  return RevisionCache.of({
    view: spannedGen("RevisionCache.view", function* (organizationId, userIds, request) {
      const minRevision = request?.minRevision
      let entry: OrgEntry | undefined
      if (minRevision !== undefined) {
        entry = yield* atLeast(organizationId, userIds, BigInt(minRevision))
      } else if (request?.consistency === "cached") {
        const now = yield* Clock.currentTimeMillis
        entry = entries.answerable(organizationId, userIds, 0n, now) ?? (yield* load(organizationId, userIds, now))
      } else {
        entry = yield* current(organizationId, userIds)
      }
      return entry === undefined ? Option.none() : Option.some(toView(organizationId, entry, userIds))
    }),

    peek: (organizationId, userIds, minRevision) => {
      const entry = entries.answerable(organizationId, userIds, minRevision, clock.unsafeCurrentTimeMillis())
      return entry === undefined ? undefined : toView(organizationId, entry, userIds)
    },

    applyRevision: (organizationId, revision, events) => entries.apply(organizationId, revision, events),
    forgetUser: (userId) => entries.forgetUser(userId),
    staleAll: () => entries.staleAll(),
    watermark: (organizationId) => entries.get(organizationId)?.revision
  })
})

/** Needs the reader, the outbox (for the events between revisions) and the key-value store. */
export const RevisionCacheLive = Layer.effect(RevisionCache, make)
