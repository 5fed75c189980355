/**
 * The permission store's cache, exact by construction.
 *
 * Every view starts with one indexed read of the organization's revision and status and of the
 * users' membership and disabled flag, so a change committed anywhere is seen by the very next
 * check on every node. What is expensive to load is cached per revision:
 * - per organization, its policy (roles, grants, parents, their closure and the catalog): loaded
 *   once per revision that changed it (not once per user);
 * - per user, their assignments, valid as long as no event since names them.
 * When the revision moved, the organization's events between the cached revision and the current
 * one (read through `Outbox.eventsSince` in the same snapshot) tell what changed: role or catalog
 * events reload the policy, assignment and member events drop those users' entries, a missing
 * revision drops it all. Effective sets are also kept in the key-value store (Redis in
 * production) with the revision they were computed at, for other nodes; one is used only if no
 * change since affects it. Entries expire a fixed time after they were written, never extended
 * by reads.
 */
import { Clock, Context, Duration, Effect, Layer, Option, Schema } from "effect"
import { spannedGen } from "../../services/Span.ts"
import { accessOf, dependsOnTime, effectiveOf, nothingHeld, type Policy, type Standing } from "../../domain/Policy.ts"
import { type Change, changesBetween, unchangedSince } from "../../domain/PolicyHistory.ts"
import { Conflict } from "../../rpc/Errors.ts"
import { type KeyValueError, KeyValueStore } from "../../services/KeyValueStore.ts"
import { Outbox } from "../../services/Outbox.ts"
import type { EffectivePermissions } from "../../services/PermissionStore.ts"
import { type Head, PermissionReader } from "./PermissionReader.ts"

/** How long a cached entry may be used at most, from when it was written. */
const ENTRY_TTL = Duration.minutes(5)
const MAX_ORGANIZATIONS = 10_000
const MAX_USERS_PER_ORGANIZATION = 50_000
/** Revisions of history kept per organization to validate shared effective sets. */
const HISTORY = 512
/** Beyond this many revisions behind, reload instead of reading the events in between. */
const MAX_CATCH_UP = 1_000
/** Events read to catch up; more (many events per revision) means reloading, which is always correct. */
const MAX_CATCH_UP_EVENTS = 20 * MAX_CATCH_UP
/** How long a view waits for `minRevision` to be committed before refusing. */
const MIN_REVISION_WAIT = Duration.seconds(2)

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

export interface RevisionCacheShape {
  /**
   * The organization for these users at its current revision (or at `minRevision` or later,
   * waited for briefly, else `revision_not_reached`); none when there is no such organization.
   */
  readonly view: (
    organizationId: string,
    userIds: ReadonlyArray<string>,
    minRevision?: string | undefined
  ) => Effect.Effect<Option.Option<View>, Conflict>
}

export class RevisionCache extends Context.Tag("app/layers/RevisionCache")<RevisionCache, RevisionCacheShape>() {}

interface UserEntry {
  readonly assignments: Standing["assignments"]
  readonly loadedAt: number
  effective?: EffectivePermissions
}

interface OrgEntry {
  readonly revision: bigint
  readonly policy: Policy
  readonly policyLoadedAt: number
  readonly users: Map<string, UserEntry>
  readonly history: ReadonlyArray<Change>
}

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
  const cache = new Map<string, OrgEntry>()
  const ttl = Duration.toMillis(ENTRY_TTL)

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

  const remember = (organizationId: string, entry: OrgEntry) => {
    const current = cache.get(organizationId)
    if (current !== undefined && current.revision > entry.revision) return
    cache.delete(organizationId)
    cache.set(organizationId, entry)
    if (cache.size > MAX_ORGANIZATIONS) cache.delete(cache.keys().next().value!)
  }

  const usable = (entry: OrgEntry | undefined, now: number) =>
    entry !== undefined && now - entry.policyLoadedAt <= ttl ? entry : undefined

  /** The entry brought to `revision`: the events since the cached one say what to reload. */
  const advance = (organizationId: string, cached: OrgEntry | undefined, revision: bigint, now: number) =>
    Effect.gen(function* () {
      if (cached !== undefined && cached.revision === revision) return cached
      const changes =
        cached !== undefined && cached.revision < revision
          ? yield* changesSince(organizationId, cached.revision, revision)
          : undefined
      let entry: OrgEntry
      if (cached === undefined || changes === undefined || changes.some((change) => change.all)) {
        const keepUsers = cached !== undefined && changes !== undefined
        const users = keepUsers ? new Map(cached.users) : new Map<string, UserEntry>()
        for (const change of changes ?? []) for (const user of change.users) users.delete(user)
        entry = {
          revision,
          policy: yield* reader.policy(organizationId),
          policyLoadedAt: now,
          users,
          history: [...(keepUsers ? cached.history : []), ...(changes ?? [{ revision, all: true, users: new Set() }])]
        }
      } else {
        const users = new Map(cached.users)
        for (const change of changes) for (const user of change.users) users.delete(user)
        entry = { ...cached, revision, users, history: [...cached.history, ...changes] }
      }
      return entry.history.length > HISTORY ? { ...entry, history: entry.history.slice(-HISTORY) } : entry
    })

  /**
   * The organization's entry brought to the snapshot's revision, and the given users' entries
   * loaded at it, all read in one snapshot.
   */
  const refresh = (organizationId: string, userIds: ReadonlyArray<string>, now: number) =>
    reader.snapshot(
      Effect.gen(function* () {
        const head = yield* reader.head(organizationId, userIds)
        if (Option.isNone(head)) return Option.none()
        const entry = yield* advance(
          organizationId,
          usable(cache.get(organizationId), now),
          BigInt(head.value.revision),
          now
        )
        for (const userId of userIds) {
          const user = entry.users.get(userId)
          if (user === undefined || now - user.loadedAt > ttl) {
            entry.users.set(userId, { assignments: yield* reader.assignments(organizationId, userId), loadedAt: now })
            if (entry.users.size > MAX_USERS_PER_ORGANIZATION) entry.users.delete(entry.users.keys().next().value!)
          }
        }
        remember(organizationId, entry)
        return Option.some({ head: head.value, entry })
      })
    )

  /** The user's effective set at the view's revision: this node's memo, a shared one still valid, or computed. */
  const effectiveIn = spannedGen(
    "RevisionCache.effective",
    function* (organizationId: string, head: Head, entry: OrgEntry, userId: string) {
      const standing = standingIn(head, entry, userId)
      const user = entry.users.get(userId)
      if (accessOf(head.status === "frozen", standing) !== "ok" || user === undefined) {
        return { revision: head.revision, ...nothingHeld } satisfies EffectivePermissions
      }
      const compute = Effect.map(Clock.currentTimeMillis, (now) => ({
        revision: head.revision,
        ...effectiveOf(entry.policy, userId, user.assignments, now)
      }))
      // Sets with an expiry in them depend on the time; they are computed, never shared.
      if (dependsOnTime(user.assignments)) return yield* compute
      if (user.effective?.revision === head.revision) return user.effective
      const latest = cache.get(organizationId)
      const shared = Option.flatMap(yield* kv.get(sharedKey(organizationId, userId)), decodeShared)
      let result: EffectivePermissions
      if (
        Option.isSome(shared) &&
        latest !== undefined &&
        unchangedSince(latest.history, latest.revision, BigInt(shared.value.revision), userId)
      ) {
        result = { ...shared.value, revision: head.revision }
      } else {
        result = yield* compute
        yield* kv.set(sharedKey(organizationId, userId), encodeShared(result), ENTRY_TTL)
      }
      user.effective = result
      return result
    }
  )

  const standingIn = (head: Head, entry: OrgEntry, userId: string): Standing => ({
    member: head.members.includes(userId),
    enabled: head.enabled.includes(userId),
    assignments: entry.users.get(userId)?.assignments ?? []
  })

  const toView = (organizationId: string, head: Head, entry: OrgEntry): View => ({
    revision: head.revision,
    frozen: head.status === "frozen",
    policy: entry.policy,
    user: (userId) => standingIn(head, entry, userId),
    effective: (userId) => effectiveIn(organizationId, head, entry, userId)
  })

  /** A revision returned by a write is committed before the write answers; a later one is waited for briefly. */
  const waitFor = (organizationId: string, userIds: ReadonlyArray<string>, revision: bigint) =>
    Effect.gen(function* () {
      const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(MIN_REVISION_WAIT)
      while (true) {
        yield* Effect.sleep(Duration.millis(50))
        const head = yield* reader.head(organizationId, userIds)
        if (Option.isNone(head) || BigInt(head.value.revision) >= revision) return head
        if ((yield* Clock.currentTimeMillis) >= deadline) {
          return yield* new Conflict({
            code: "revision_not_reached",
            message: `The organization has not reached revision ${revision}`
          })
        }
      }
    })

  return RevisionCache.of({
    view: spannedGen("RevisionCache.view", function* (organizationId, userIds, minRevision) {
      const now = yield* Clock.currentTimeMillis
      let head = yield* reader.head(organizationId, userIds)
      if (Option.isSome(head) && minRevision !== undefined && BigInt(head.value.revision) < BigInt(minRevision)) {
        head = yield* waitFor(organizationId, userIds, BigInt(minRevision))
      }
      if (Option.isNone(head)) return Option.none()
      const cached = usable(cache.get(organizationId), now)
      if (
        cached !== undefined &&
        cached.revision === BigInt(head.value.revision) &&
        userIds.every((id) => {
          const user = cached.users.get(id)
          return user !== undefined && now - user.loadedAt <= ttl
        })
      ) {
        return Option.some(toView(organizationId, head.value, cached))
      }
      const refreshed = yield* refresh(organizationId, userIds, now)
      return Option.map(refreshed, ({ head, entry }) => toView(organizationId, head, entry))
    })
  })
})

/** Needs the reader, the outbox (for the events between revisions) and the key-value store. */
export const RevisionCacheLive = Layer.effect(RevisionCache, make)
