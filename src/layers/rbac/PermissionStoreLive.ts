/**
 * The permission store: decisions (domain/Policy.ts, domain/Decision.ts) on views of an
 * organization at one revision, which the revision cache (RevisionCache.ts) keeps exact and cheap
 * over the Postgres reader (PermissionReader.ts). Any failure while deciding is a denial, logged.
 */
import { Clock, Effect, Layer, Option } from "effect"
import {
  accessOf,
  dependsOnTime,
  type Judgement,
  judge,
  type Policy,
  rolesHeld,
  type Standing
} from "../../domain/Policy.ts"
import { Conflict, ServiceUnavailable } from "../../rpc/Errors.ts"
import {
  type CheckAnswer,
  type CheckRequest,
  type Consistency,
  type EffectivePermissions,
  type Explanation,
  PermissionStore,
  type SessionSnapshot
} from "../../services/PermissionStore.ts"
import { spannedGen } from "../../services/Span.ts"
import { PermissionReaderLive } from "./PermissionReader.ts"
import { RevisionCache, RevisionCacheLive, type View } from "./RevisionCache.ts"
import { RevisionFeedLive } from "./RevisionFeed.ts"

const noOrganization: CheckAnswer = { member: false, allowed: false, reason: "no such organization", revision: "0" }
const noEffective: EffectivePermissions = { revision: "0", permissions: [], scoped: {}, scopedDenied: {} }

const deny = (cause: unknown) =>
  Effect.logError("permissions: cannot decide; denying", cause).pipe(
    Effect.zipRight(Effect.fail(new ServiceUnavailable({ message: "Cannot decide right now; denied" })))
  )

/** Postgres or the key-value store failing, or a defect, while deciding: deny, and log it. */
const failClosed = <A, E>(effect: Effect.Effect<A, E>) =>
  effect.pipe(
    Effect.catchIf((error): error is Exclude<E, Conflict> => !(error instanceof Conflict), deny),
    Effect.catchAllDefect(deny)
  )

/** At most this many judgements are kept per user standing; a full memo starts over. */
const MAX_JUDGEMENTS = 4_096

/**
 * Judgements of one user's standing under one policy, for the policy's catalog keys, organization-
 * wide and on resources given without attributes (what a condition may read then is fixed by the
 * key: the resource's type and id, the user's id). A standing and a policy are immutable values that
 * the revision cache replaces when they change, so a judgement found here is the one `judge` would
 * make again; standings with an expiring assignment depend on the time and are never kept.
 */
const judgements = new WeakMap<Standing, { readonly policy: Policy; readonly byKey: Map<string, Judgement> }>()

/** Each policy's catalog as a set: only catalog keys are kept, so a client cannot fill the memo with made-up keys. */
const catalogs = new WeakMap<Policy, ReadonlySet<string>>()
const inCatalog = (policy: Policy, permission: string) => {
  let keys = catalogs.get(policy)
  if (keys === undefined) {
    keys = new Set(policy.catalog)
    catalogs.set(policy, keys)
  }
  return keys.has(permission)
}

const judgeKept = (
  v: View,
  standing: Standing,
  userId: string,
  request: Pick<CheckRequest, "permission" | "resource">,
  now: number
) => {
  const { permission, resource } = request
  const input = { subject: { id: userId }, permission, resource, now }
  if (
    v.frozen ||
    resource?.attributes !== undefined ||
    dependsOnTime(standing.assignments) ||
    !inCatalog(v.policy, permission)
  ) {
    return judge(v.policy, v.frozen, standing, input)
  }
  let memo = judgements.get(standing)
  if (memo === undefined || memo.policy !== v.policy) {
    memo = { policy: v.policy, byKey: new Map() }
    judgements.set(standing, memo)
  }
  const key = resource === undefined ? permission : `${permission}\u0000${resource.type}\u0000${resource.id}`
  let judgement = memo.byKey.get(key)
  if (judgement === undefined) {
    judgement = judge(v.policy, v.frozen, standing, input)
    if (memo.byKey.size >= MAX_JUDGEMENTS) memo.byKey.clear()
    memo.byKey.set(key, judgement)
  }
  return judgement
}

/** The check in the view, with the standing that decided it. */
const decideIn = (
  v: View,
  userId: string,
  request: Pick<CheckRequest, "permission" | "resource">,
  now: number
): { readonly answer: CheckAnswer; readonly judgement: Judgement } => {
  const standing = v.user(userId)
  const judgement = judgeKept(v, standing, userId, request, now)
  const answer = {
    member: standing.member,
    allowed: judgement.allowed,
    reason: judgement.reason,
    revision: v.revision,
    ...(judgement.blocked ? { blocked: true } : {})
  }
  return { answer, judgement }
}

export const make = Effect.gen(function* () {
  const cache = yield* RevisionCache

  /** Views at a revision already reached (or none): the wait's refusal cannot happen there. */
  const viewNow = (organizationId: string, userIds: ReadonlyArray<string>, minRevision?: string) =>
    cache.view(organizationId, userIds, { minRevision }).pipe(Effect.catchTag("Conflict", Effect.die))

  const sessions = spannedGen(
    "PermissionStore.sessions",
    function* (organizationId: string, userIds: ReadonlyArray<string>, minRevision?: string) {
      const found = yield* cache.view(organizationId, userIds, { minRevision })
      if (Option.isNone(found)) {
        const none: SessionSnapshot = { access: "no_organization", ...noEffective, roles: [], roleIds: [] }
        return userIds.map(() => none)
      }
      const v = found.value
      const now = yield* Clock.currentTimeMillis
      return yield* Effect.forEach(userIds, (userId) => {
        const standing = v.user(userId)
        const { roles, roleIds } = rolesHeld(v.policy, standing.assignments, now)
        return Effect.map(
          v.effective(userId),
          (effective): SessionSnapshot => ({ access: accessOf(v.frozen, standing), ...effective, roles, roleIds })
        )
      })
    },
    failClosed
  )

  const clock = yield* Effect.clock

  type Checks = ReadonlyArray<Pick<CheckRequest, "userId" | "permission" | "resource">>

  /**
   * The answers from this node's memory when it holds the view asked for (`minRevision` reached, or
   * `cached` at the watermark), without an effect; undefined when the effectful path must wait or
   * read, or on anything unexpected (that path then decides, logs, and denies if it must).
   */
  const answersNow = (
    organizationId: string,
    checks: Checks,
    minRevision: string | undefined,
    consistency: Consistency | undefined
  ) => {
    if (minRevision === undefined && consistency !== "cached") return undefined
    try {
      const users = checks.length === 1 ? [checks[0]!.userId] : [...new Set(checks.map((check) => check.userId))]
      const v = cache.peek(organizationId, users, minRevision === undefined ? 0n : BigInt(minRevision))
      if (v === undefined) return undefined
      const now = clock.unsafeCurrentTimeMillis()
      return checks.map((check) => decideIn(v, check.userId, check, now).answer)
    } catch {
      return undefined
    }
  }

  /** The same answers through the revision cache's view: waiting for a revision, or reading it. */
  const answersIn = (name: string) =>
    spannedGen(
      name,
      function* (
        organizationId: string,
        checks: Checks,
        minRevision: string | undefined,
        consistency: Consistency | undefined
      ) {
        const users = [...new Set(checks.map((check) => check.userId))]
        const v = yield* cache.view(organizationId, users, { minRevision, consistency })
        if (Option.isNone(v)) return checks.map(() => noOrganization)
        const now = yield* Clock.currentTimeMillis
        return checks.map((check) => decideIn(v.value, check.userId, check, now).answer)
      },
      failClosed
    )
  const checkSlow = answersIn("PermissionStore.check")
  const checkManySlow = answersIn("PermissionStore.checkMany")

  const checkNow = (request: CheckRequest) =>
    answersNow(request.organizationId, [request], request.minRevision, request.consistency)?.[0]

  return PermissionStore.of({
    checkNow,
    checkManyNow: answersNow,

    check: (request) => {
      const answer = checkNow(request)
      if (answer !== undefined) return Effect.succeed(answer)
      const { organizationId, minRevision, consistency } = request
      return Effect.map(checkSlow(organizationId, [request], minRevision, consistency), (answers) => answers[0]!)
    },

    checkMany: (organizationId, checks, minRevision, consistency) => {
      const answers = answersNow(organizationId, checks, minRevision, consistency)
      return answers === undefined
        ? checkManySlow(organizationId, checks, minRevision, consistency)
        : Effect.succeed(answers)
    },

    explain: spannedGen(
      "PermissionStore.explain",
      function* ({ organizationId, userId, minRevision, consistency, ...request }) {
        const found = yield* cache.view(organizationId, [userId], { minRevision, consistency })
        if (Option.isNone(found)) return { ...noOrganization, paths: [] } satisfies Explanation
        const v = found.value
        const { answer, judgement } = decideIn(v, userId, request, yield* Clock.currentTimeMillis)
        const { assignments } = v.user(userId)
        const name = (roleId: string) => v.policy.byId.get(roleId)?.name ?? roleId
        return {
          ...answer,
          paths: (judgement.decision?.paths ?? []).map((path) => ({
            effect: path.grant.effect,
            permission: path.grant.permission,
            condition: path.grant.condition,
            role: { id: path.viaRoleId, name: name(path.viaRoleId) },
            assignment: {
              id: path.assignmentId,
              role: { id: path.roleId, name: name(path.roleId) },
              scope: path.scope,
              expiresAt: assignments.find((a) => a.id === path.assignmentId)?.expiresAt
            }
          }))
        } satisfies Explanation
      },
      failClosed
    ),

    effective: spannedGen(
      "PermissionStore.effective",
      function* (organizationId, userId, minRevision) {
        const v = yield* viewNow(organizationId, [userId], minRevision)
        if (Option.isNone(v)) return noEffective
        return yield* v.value.effective(userId)
      },
      failClosed
    ),

    session: (organizationId, userId, minRevision) =>
      Effect.map(sessions(organizationId, [userId], minRevision), (found) => found[0]!),

    sessions
  })
})

/**
 * `PermissionStore` over the revision cache, its feed and the Postgres reader; needs SQL, the
 * outbox, the event stream and the key-value store.
 */
export const PermissionStoreLive = Layer.effect(PermissionStore, make).pipe(
  Layer.provide(RevisionFeedLive.pipe(Layer.provideMerge(RevisionCacheLive))),
  Layer.provide(PermissionReaderLive)
)
