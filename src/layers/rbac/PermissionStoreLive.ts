/**
 * The permission store on Postgres, with a cache that is exact by construction.
 *
 * Every answer starts with one indexed read of the organization's revision and status and of the
 * users' membership and disabled flag, so a change committed anywhere is seen by the very next
 * check on every node. What is expensive to load is cached per revision:
 * - per organization, its roles, grants, parents, their closure and the catalog: computed once per
 *   revision that changed them (not once per user);
 * - per user, their assignments, valid as long as no event since names them.
 * When the revision moved, the outbox rows between the cached revision and the current one (read
 * in the same snapshot) tell what changed: role or catalog events reload the organization's
 * policy, assignment and member events drop those users' entries, a missing revision drops it all.
 * Effective sets are also kept in the key-value store (Redis in production) with the revision
 * they were computed at, for other nodes; one is used only if no change since affects it.
 * Entries expire a fixed time after they were written, never extended by reads. Any failure while
 * deciding is a denial, logged.
 */
import { SqlClient } from "@effect/sql"
import { Clock, Duration, Effect, Layer, Option, Schema } from "effect"
import { BUILT_IN_PERMISSIONS } from "../../domain/Catalog.ts"
import {
  type Assignment,
  type Condition,
  closure,
  covers,
  type Decision,
  decide,
  type GrantEffect,
  type Resource,
  type Role
} from "../../domain/Decision.ts"
import { Conflict, ServiceUnavailable } from "../../rpc/Errors.ts"
import { KeyValueStore } from "../../services/KeyValueStore.ts"
import {
  type CheckAnswer,
  type EffectivePermissions,
  type Explanation,
  PermissionStore,
  type SessionSnapshot
} from "../../services/PermissionStore.ts"

/** How long a cached entry may be used at most, from when it was written. */
const ENTRY_TTL = Duration.minutes(5)
const MAX_ORGANIZATIONS = 10_000
const MAX_USERS_PER_ORGANIZATION = 50_000
/** Revisions of history kept per organization to validate shared effective sets. */
const HISTORY = 512
/** Beyond this many revisions behind, reload instead of reading the events in between. */
const MAX_CATCH_UP = 1_000
/** How long a check waits for `minRevision` to be committed before refusing. */
const MIN_REVISION_WAIT = Duration.seconds(2)

/** An action no catalog lists: only a wildcard grant allows it. */
const UNLISTED = "any.unlisted"
const wildcardOf = (key: string) => (key.startsWith(`${UNLISTED}:`) ? "*" : `${key.split(":")[0]}:*`)

interface Policy {
  readonly roles: ReadonlyArray<Role>
  readonly byId: ReadonlyMap<string, Role>
  readonly ancestors: ReadonlyMap<string, ReadonlyArray<string>>
  readonly catalog: ReadonlyArray<string>
}

interface UserEntry {
  readonly assignments: ReadonlyArray<Assignment>
  readonly loadedAt: number
  effective?: EffectivePermissions
}

interface Change {
  readonly revision: bigint
  /** The policy changed (roles, grants, parents, catalog, status), or the history is unknown. */
  readonly all: boolean
  readonly users: ReadonlySet<string>
}

interface OrgEntry {
  readonly revision: bigint
  readonly policy: Policy
  readonly policyLoadedAt: number
  readonly users: Map<string, UserEntry>
  readonly history: ReadonlyArray<Change>
}

interface Head {
  readonly revision: string
  readonly status: "active" | "frozen"
  readonly members: ReadonlyArray<string>
  readonly enabled: ReadonlyArray<string>
}

/** Everything needed to decide for some users, at one revision. */
interface View {
  readonly revision: string
  readonly frozen: boolean
  readonly policy: Policy
  readonly user: (userId: string) => { member: boolean; enabled: boolean; entry: UserEntry | undefined }
}

const USER_EVENTS = new Set([
  "assignment.added",
  "assignment.removed",
  "assignment.expired",
  "member.added",
  "member.removed"
])

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

export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const kv = yield* KeyValueStore
  const cache = new Map<string, OrgEntry>()

  // The built-in keys are the same for every organization; new ones appear on the next start.
  yield* sql`
    INSERT INTO permissions (key, description)
    SELECT * FROM unnest(${BUILT_IN_PERMISSIONS.map(([key]) => key)}::text[], ${BUILT_IN_PERMISSIONS.map(([, d]) => d)}::text[])
    ON CONFLICT (key) WHERE organization_id IS NULL DO UPDATE SET description = excluded.description`

  const readHead = (organizationId: string, userIds: ReadonlyArray<string>) =>
    sql<Head>`
      SELECT o.revision::text AS revision, o.status,
        ARRAY(SELECT m.user_id::text FROM memberships m
              WHERE m.organization_id = o.id AND m.user_id = ANY(${userIds}::uuid[])) AS members,
        ARRAY(SELECT u.id::text FROM users u WHERE u.id = ANY(${userIds}::uuid[]) AND u.disabled_at IS NULL) AS enabled
      FROM organizations o WHERE o.id = ${organizationId}`.pipe(Effect.map((rows) => rows[0]))

  const loadPolicy = (organizationId: string) =>
    Effect.gen(function* () {
      const roleRows = yield* sql<{ id: string; name: string }>`
        SELECT id, name FROM roles WHERE organization_id = ${organizationId}`
      const parentRows = yield* sql<{ roleId: string; parentId: string }>`
        SELECT role_id, parent_id FROM role_parents WHERE organization_id = ${organizationId}`
      const grantRows = yield* sql<{ roleId: string; permission: string; effect: GrantEffect; condition: unknown }>`
        SELECT role_id, permission, effect, condition FROM role_grants WHERE organization_id = ${organizationId}
        ORDER BY id`
      const catalogRows = yield* sql<{ key: string }>`
        SELECT DISTINCT key FROM permissions WHERE organization_id IS NULL OR organization_id = ${organizationId}
        ORDER BY key`
      const parents = new Map<string, Array<string>>()
      for (const row of parentRows) parents.set(row.roleId, [...(parents.get(row.roleId) ?? []), row.parentId])
      const grants = new Map<string, Array<Role["grants"][number]>>()
      for (const row of grantRows) {
        const condition = (
          typeof row.condition === "string" ? JSON.parse(row.condition) : row.condition
        ) as Condition | null
        grants.set(row.roleId, [
          ...(grants.get(row.roleId) ?? []),
          { permission: row.permission, effect: row.effect, condition: condition ?? undefined }
        ])
      }
      const roles: Array<Role> = roleRows.map((role) => ({
        id: role.id,
        name: role.name,
        parents: parents.get(role.id) ?? [],
        grants: grants.get(role.id) ?? []
      }))
      return {
        roles,
        byId: new Map(roles.map((role) => [role.id, role])),
        ancestors: closure(roles),
        catalog: catalogRows.map((row) => row.key)
      } satisfies Policy
    })

  const loadAssignments = (organizationId: string, userId: string, now: number) =>
    sql<{ id: string; roleId: string; scopeType: string | null; scopeId: string | null; expiresAt: Date | null }>`
      SELECT id, role_id, scope_type, scope_id, expires_at FROM assignments
      WHERE organization_id = ${organizationId} AND user_id = ${userId}`.pipe(
      Effect.map(
        (rows): UserEntry => ({
          loadedAt: now,
          assignments: rows.map((a) => ({
            id: a.id,
            roleId: a.roleId,
            scope: a.scopeType !== null && a.scopeId !== null ? { type: a.scopeType, id: a.scopeId } : undefined,
            expiresAt: a.expiresAt?.getTime()
          }))
        })
      )
    )

  /** What changed between two revisions, from the outbox rows in the current snapshot. */
  const changesBetween = (organizationId: string, from: bigint, to: bigint) =>
    Effect.gen(function* () {
      if (to - from > BigInt(MAX_CATCH_UP)) return undefined
      const rows = yield* sql<{ revision: string; type: string; userId: string | null }>`
        SELECT revision::text AS revision, event_type AS type, payload->>'userId' AS "userId" FROM outbox
        WHERE organization_id = ${organizationId} AND revision > ${from.toString()}::bigint
          AND revision <= ${to.toString()}::bigint
        ORDER BY revision`
      const changes = new Map<bigint, { all: boolean; users: Set<string> }>()
      for (const row of rows) {
        const revision = BigInt(row.revision)
        const change = changes.get(revision) ?? { all: false, users: new Set<string>() }
        if (USER_EVENTS.has(row.type) && row.userId !== null) change.users.add(row.userId)
        else change.all = true
        changes.set(revision, change)
      }
      // Every revision has events; one without any was not recorded here (or is past retention).
      if (BigInt(changes.size) !== to - from) return undefined
      return [...changes].map(([revision, change]): Change => ({ revision, ...change }))
    })

  const remember = (organizationId: string, entry: OrgEntry) => {
    const current = cache.get(organizationId)
    if (current !== undefined && current.revision > entry.revision) return
    cache.delete(organizationId)
    cache.set(organizationId, entry)
    if (cache.size > MAX_ORGANIZATIONS) cache.delete(cache.keys().next().value!)
  }

  /**
   * The organization's entry brought to the snapshot's revision, and the given users' entries
   * loaded at it. Runs inside one REPEATABLE READ transaction so everything is at one revision.
   */
  const refresh = (organizationId: string, userIds: ReadonlyArray<string>, now: number) =>
    Effect.gen(function* () {
      yield* sql`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY`
      const head = yield* readHead(organizationId, userIds)
      if (head === undefined) return undefined
      const revision = BigInt(head.revision)
      const cached = usable(cache.get(organizationId), now)
      let entry: OrgEntry
      if (cached !== undefined && cached.revision === revision) {
        entry = cached
      } else {
        const changes =
          cached !== undefined && cached.revision < revision
            ? yield* changesBetween(organizationId, cached.revision, revision)
            : undefined
        if (cached === undefined || changes === undefined || changes.some((change) => change.all)) {
          const keepUsers = cached !== undefined && changes !== undefined
          const users = keepUsers ? new Map(cached.users) : new Map<string, UserEntry>()
          for (const change of changes ?? []) for (const user of change.users) users.delete(user)
          entry = {
            revision,
            policy: yield* loadPolicy(organizationId),
            policyLoadedAt: now,
            users,
            history: [...(keepUsers ? cached.history : []), ...(changes ?? [{ revision, all: true, users: new Set() }])]
          }
        } else {
          const users = new Map(cached.users)
          for (const change of changes) for (const user of change.users) users.delete(user)
          entry = { ...cached, revision, users, history: [...cached.history, ...changes] }
        }
        if (entry.history.length > HISTORY) entry = { ...entry, history: entry.history.slice(-HISTORY) }
      }
      for (const userId of userIds) {
        const user = entry.users.get(userId)
        if (user === undefined || now - user.loadedAt > Duration.toMillis(ENTRY_TTL)) {
          entry.users.set(userId, yield* loadAssignments(organizationId, userId, now))
          if (entry.users.size > MAX_USERS_PER_ORGANIZATION) entry.users.delete(entry.users.keys().next().value!)
        }
      }
      remember(organizationId, entry)
      return { head, entry }
    }).pipe(sql.withTransaction)

  const usable = (entry: OrgEntry | undefined, now: number) =>
    entry !== undefined && now - entry.policyLoadedAt <= Duration.toMillis(ENTRY_TTL) ? entry : undefined

  const toView = (head: Head, entry: OrgEntry): View => ({
    revision: head.revision,
    frozen: head.status === "frozen",
    policy: entry.policy,
    user: (userId) => ({
      member: head.members.includes(userId),
      enabled: head.enabled.includes(userId),
      entry: entry.users.get(userId)
    })
  })

  /**
   * One view of the organization for these users at the current revision: from the cache when
   * it is at that revision (one query), else refreshed. `undefined` when there is no organization.
   */
  const view = (organizationId: string, userIds: ReadonlyArray<string>, minRevision?: string) =>
    Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      let head = yield* readHead(organizationId, userIds)
      if (head !== undefined && minRevision !== undefined && BigInt(head.revision) < BigInt(minRevision)) {
        head = yield* waitFor(organizationId, userIds, BigInt(minRevision))
      }
      if (head === undefined) return undefined
      const cached = usable(cache.get(organizationId), now)
      if (
        cached !== undefined &&
        cached.revision === BigInt(head.revision) &&
        userIds.every((id) => {
          const user = cached.users.get(id)
          return user !== undefined && now - user.loadedAt <= Duration.toMillis(ENTRY_TTL)
        })
      ) {
        return toView(head, cached)
      }
      const refreshed = yield* refresh(organizationId, userIds, now)
      return refreshed === undefined ? undefined : toView(refreshed.head, refreshed.entry)
    })

  /** A revision returned by a write is committed before the write answers; a later one is waited for briefly. */
  const waitFor = (organizationId: string, userIds: ReadonlyArray<string>, revision: bigint) =>
    Effect.gen(function* () {
      const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(MIN_REVISION_WAIT)
      while (true) {
        yield* Effect.sleep(Duration.millis(50))
        const head = yield* readHead(organizationId, userIds)
        if (head === undefined || BigInt(head.revision) >= revision) return head
        if ((yield* Clock.currentTimeMillis) >= deadline) {
          return yield* new Conflict({
            code: "revision_not_reached",
            message: `The organization has not reached revision ${revision}`
          })
        }
      }
    })

  const deny = (cause: unknown) =>
    Effect.logError("permissions: cannot decide; denying", cause).pipe(
      Effect.zipRight(Effect.fail(new ServiceUnavailable({ message: "Cannot decide right now; denied" })))
    )

  /** Postgres or the key-value store failing, or a defect, while deciding: deny, and log it. */
  const failClosed = <A, E extends { readonly _tag: string }>(effect: Effect.Effect<A, E>) =>
    effect.pipe(
      Effect.catchIf(
        (error): error is Exclude<E, Conflict> => !(error instanceof Conflict),
        (error) => deny(error)
      ),
      Effect.catchAllDefect(deny)
    ) as Effect.Effect<A, ServiceUnavailable | Extract<E, Conflict>>

  const decideIn = (
    v: View,
    userId: string,
    permission: string,
    resource: Resource | undefined,
    now: number
  ): { answer: CheckAnswer; decision: Decision | undefined } => {
    const { member, enabled, entry } = v.user(userId)
    const answer = (allowed: boolean, reason: string) => ({ member, allowed, reason, revision: v.revision })
    const blocked = (reason: string) => ({ answer: { ...answer(false, reason), blocked: true }, decision: undefined })
    if (v.frozen) return blocked("the organization is frozen")
    if (!enabled) return blocked("the user is disabled")
    if (!member) return { answer: answer(false, "not a member of the organization"), decision: undefined }
    const decision = decide(
      { subject: { id: userId }, permission, resource, now },
      v.policy.roles,
      entry?.assignments ?? [],
      v.policy.ancestors
    )
    return { answer: answer(decision.allowed, decision.reason), decision }
  }

  const noOrganization: CheckAnswer = { member: false, allowed: false, reason: "no such organization", revision: "0" }

  const computeEffective = (v: View, userId: string, now: number): EffectivePermissions => {
    const { entry } = v.user(userId)
    const assignments = entry?.assignments ?? []
    const allowedOn = (resource?: { type: string; id: string }) =>
      v.policy.catalog.filter(
        (permission) =>
          decide(
            { subject: { id: userId }, permission, resource, now },
            v.policy.roles,
            assignments,
            v.policy.ancestors
          ).allowed
      )
    const everywhere = allowedOn()
    const scoped: Record<string, ReadonlyArray<string>> = {}
    const scopedDenied: Record<string, ReadonlyArray<string>> = {}
    const seen = new Set<string>()
    const everywhereSet = new Set(everywhere)
    for (const assignment of assignments) {
      if (assignment.scope === undefined) continue
      const key = `${assignment.scope.type}/${assignment.scope.id}`
      if (seen.has(key)) continue
      seen.add(key)
      const on = new Set(allowedOn(assignment.scope))
      const extra = [...on].filter((permission) => !everywhereSet.has(permission))
      const denied = everywhere.filter((permission) => !on.has(permission))
      if (extra.length > 0) scoped[key] = extra
      if (denied.length > 0) scopedDenied[key] = denied
    }
    return { revision: v.revision, permissions: everywhere, scoped, scopedDenied }
  }

  /** Whether nothing between `from` and the entry's revision touched the user, per this node's history. */
  const unchangedSince = (entry: OrgEntry | undefined, from: bigint, userId: string) => {
    if (entry === undefined || from > entry.revision) return false
    if (from === entry.revision) return true
    const oldest = entry.history[0]?.revision
    if (oldest === undefined || oldest > from + 1n) return false
    return entry.history.every((change) => change.revision <= from || (!change.all && !change.users.has(userId)))
  }

  const hasExpiring = (assignments: ReadonlyArray<Assignment>) => assignments.some((a) => a.expiresAt !== undefined)

  /** The user's effective set at the view's revision: this node's memo, a shared one still valid, or computed. */
  const effectiveIn = (v: View, organizationId: string, userId: string) =>
    Effect.gen(function* () {
      const { member, enabled, entry } = v.user(userId)
      if (v.frozen || !member || !enabled || entry === undefined) {
        return { revision: v.revision, permissions: [], scoped: {}, scopedDenied: {} } satisfies EffectivePermissions
      }
      // Sets with an expiry in them depend on the time; they are computed, never shared.
      if (hasExpiring(entry.assignments)) return computeEffective(v, userId, yield* Clock.currentTimeMillis)
      if (entry.effective?.revision === v.revision) return entry.effective
      const orgEntry = cache.get(organizationId)
      const shared = Option.flatMap(yield* kv.get(sharedKey(organizationId, userId)), decodeShared)
      let result: EffectivePermissions
      if (Option.isSome(shared) && unchangedSince(orgEntry, BigInt(shared.value.revision), userId)) {
        result = { ...shared.value, revision: v.revision }
      } else {
        result = computeEffective(v, userId, yield* Clock.currentTimeMillis)
        yield* kv.set(sharedKey(organizationId, userId), encodeShared(result), ENTRY_TTL)
      }
      entry.effective = result
      return result
    })

  return PermissionStore.of({
    check: ({ organizationId, userId, permission, resource, minRevision }) =>
      failClosed(
        Effect.gen(function* () {
          const v = yield* view(organizationId, [userId], minRevision)
          if (v === undefined) return noOrganization
          return decideIn(v, userId, permission, resource, yield* Clock.currentTimeMillis).answer
        })
      ),

    checkMany: (organizationId, checks, minRevision) =>
      failClosed(
        Effect.gen(function* () {
          const v = yield* view(organizationId, [...new Set(checks.map((check) => check.userId))], minRevision)
          if (v === undefined) return checks.map(() => noOrganization)
          const now = yield* Clock.currentTimeMillis
          return checks.map((check) => decideIn(v, check.userId, check.permission, check.resource, now).answer)
        })
      ),

    explain: ({ organizationId, userId, permission, resource, minRevision }) =>
      failClosed(
        Effect.gen(function* () {
          const v = yield* view(organizationId, [userId], minRevision)
          if (v === undefined) return { ...noOrganization, paths: [] } satisfies Explanation
          const { answer, decision } = decideIn(v, userId, permission, resource, yield* Clock.currentTimeMillis)
          const { entry } = v.user(userId)
          const name = (roleId: string) => v.policy.byId.get(roleId)?.name ?? roleId
          return {
            ...answer,
            paths: (decision?.paths ?? []).map((path) => ({
              effect: path.grant.effect,
              permission: path.grant.permission,
              condition: path.grant.condition,
              role: { id: path.viaRoleId, name: name(path.viaRoleId) },
              assignment: {
                id: path.assignmentId,
                role: { id: path.roleId, name: name(path.roleId) },
                scope: path.scope,
                expiresAt: entry?.assignments.find((a) => a.id === path.assignmentId)?.expiresAt
              }
            }))
          } satisfies Explanation
        })
      ),

    effective: (organizationId, userId) =>
      failClosed(
        Effect.gen(function* () {
          const v = yield* view(organizationId, [userId]).pipe(Effect.catchTag("Conflict", Effect.die))
          if (v === undefined) return { revision: "0", permissions: [], scoped: {}, scopedDenied: {} }
          return yield* effectiveIn(v, organizationId, userId)
        })
      ),

    session: (organizationId, userId, minRevision) =>
      failClosed(
        Effect.gen(function* () {
          const v = yield* view(organizationId, [userId], minRevision)
          if (v === undefined) {
            return {
              access: "no_organization",
              revision: "0",
              permissions: [],
              scoped: {},
              scopedDenied: {},
              roles: [],
              roleIds: []
            }
          }
          const { member, enabled, entry } = v.user(userId)
          const access = v.frozen ? "frozen" : !enabled ? "disabled" : !member ? "not_member" : "ok"
          const now = yield* Clock.currentTimeMillis
          const assignments = entry?.assignments ?? []
          const live = assignments.filter((a) => a.expiresAt === undefined || a.expiresAt > now)
          const roles = [
            ...new Set(
              live.filter((a) => a.scope === undefined).map((a) => v.policy.byId.get(a.roleId)?.name ?? a.roleId)
            )
          ].sort()
          const roleIds = [...new Set(assignments.flatMap((a) => v.policy.ancestors.get(a.roleId) ?? [a.roleId]))]
          const effective = yield* effectiveIn(v, organizationId, userId)
          return { access, ...effective, roles, roleIds } satisfies SessionSnapshot
        })
      ),

    notHeldBy: (organizationId, actorId, request) =>
      failClosed(
        Effect.gen(function* () {
          const v = yield* view(organizationId, [actorId]).pipe(Effect.catchTag("Conflict", Effect.die))
          if (v === undefined) return "org:read"
          const patterns = new Set(request.patterns ?? [])
          for (const roleId of request.roleIds ?? []) {
            for (const via of v.policy.ancestors.get(roleId) ?? []) {
              for (const grant of v.policy.byId.get(via)?.grants ?? []) {
                if (grant.effect === "allow") patterns.add(grant.permission)
              }
            }
          }
          const needed = new Set<string>()
          for (const pattern of patterns) {
            if (pattern === "*") needed.add(`${UNLISTED}:${UNLISTED}`)
            else if (pattern.endsWith(":*")) needed.add(`${pattern.slice(0, -1)}${UNLISTED}`)
            else needed.add(pattern)
            for (const key of v.policy.catalog) if (covers(pattern, key)) needed.add(key)
          }
          const now = yield* Clock.currentTimeMillis
          for (const permission of needed) {
            if (!decideIn(v, actorId, permission, undefined, now).answer.allowed) {
              return permission.includes(UNLISTED) ? wildcardOf(permission) : permission
            }
          }
          return undefined
        })
      )
  })
})

export const PermissionStoreLive = Layer.effect(PermissionStore, make)
