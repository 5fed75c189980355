import { SqlClient } from "@effect/sql"
import { Clock, Effect, Layer } from "effect"
import { ServiceUnavailable } from "../rpc/Errors.ts"
import { type CheckAnswer, PermissionStore } from "../services/PermissionStore.ts"
import { BUILT_IN_PERMISSIONS } from "./Catalog.ts"
import { type Assignment, type Condition, closure, covers, decide, type GrantEffect, type Role } from "./Decision.ts"

interface Policy {
  readonly revision: string
  readonly member: boolean
  readonly denied: string | undefined
  readonly roles: ReadonlyArray<Role>
  readonly assignments: ReadonlyArray<Assignment>
  readonly catalog: ReadonlyArray<string>
}

/** An action no catalog lists: only a wildcard grant allows it. */
const UNLISTED = "any.unlisted"
const wildcardOf = (key: string) => (key.startsWith(`${UNLISTED}:`) ? "*" : `${key.split(":")[0]}:*`)

export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient

  // The built-in keys are the same for every organization; new ones appear on the next start.
  yield* sql`
    INSERT INTO permissions (key, description)
    SELECT * FROM unnest(${BUILT_IN_PERMISSIONS.map(([key]) => key)}::text[], ${BUILT_IN_PERMISSIONS.map(([, d]) => d)}::text[])
    ON CONFLICT (key) WHERE organization_id IS NULL DO UPDATE SET description = excluded.description`

  /** One consistent snapshot: the data and the revision it belongs to. */
  const load = (organizationId: string, userId: string) =>
    Effect.gen(function* () {
      yield* sql`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY`
      const [org] = yield* sql<{ status: string; revision: string }>`
        SELECT status, revision::text AS revision FROM organizations WHERE id = ${organizationId}`
      if (org === undefined) return undefined
      const [user] = yield* sql<{ disabledAt: Date | null }>`SELECT disabled_at FROM users WHERE id = ${userId}`
      const [membership] = yield* sql`
        SELECT 1 AS one FROM memberships WHERE organization_id = ${organizationId} AND user_id = ${userId}`
      const denied =
        org.status === "frozen"
          ? "the organization is frozen"
          : user === undefined || user.disabledAt !== null
            ? "the user is disabled"
            : undefined
      const roleRows = yield* sql<{ id: string; name: string }>`
        SELECT id, name FROM roles WHERE organization_id = ${organizationId}`
      const parentRows = yield* sql<{ roleId: string; parentId: string }>`
        SELECT role_id, parent_id FROM role_parents WHERE organization_id = ${organizationId}`
      const grantRows = yield* sql<{
        roleId: string
        permission: string
        effect: GrantEffect
        condition: Condition | null
      }>`
        SELECT role_id, permission, effect, condition FROM role_grants WHERE organization_id = ${organizationId}`
      const assignmentRows = yield* sql<{
        id: string
        roleId: string
        scopeType: string | null
        scopeId: string | null
        expiresAt: Date | null
      }>`
        SELECT id, role_id, scope_type, scope_id, expires_at FROM assignments
        WHERE organization_id = ${organizationId} AND user_id = ${userId}`
      const catalogRows = yield* sql<{ key: string }>`
        SELECT key FROM permissions WHERE organization_id IS NULL OR organization_id = ${organizationId}`
      const roles: Array<Role> = roleRows.map((role) => ({
        id: role.id,
        name: role.name,
        parents: parentRows.filter((p) => p.roleId === role.id).map((p) => p.parentId),
        grants: grantRows
          .filter((g) => g.roleId === role.id)
          .map((g) => ({ permission: g.permission, effect: g.effect, condition: g.condition ?? undefined }))
      }))
      const assignments: Array<Assignment> = assignmentRows.map((a) => ({
        id: a.id,
        roleId: a.roleId,
        scope: a.scopeType !== null && a.scopeId !== null ? { type: a.scopeType, id: a.scopeId } : undefined,
        expiresAt: a.expiresAt?.getTime()
      }))
      return {
        revision: org.revision,
        member: membership !== undefined,
        denied,
        roles,
        assignments,
        catalog: catalogRows.map((c) => c.key)
      } satisfies Policy
    }).pipe(sql.withTransaction)

  const failClosed = <A>(effect: Effect.Effect<A, unknown>) =>
    effect.pipe(
      Effect.catchAllCause((cause) =>
        Effect.logError("permissions: cannot decide; denying", cause).pipe(
          Effect.zipRight(Effect.fail(new ServiceUnavailable({ message: "Cannot decide right now; denied" })))
        )
      )
    )

  return PermissionStore.of({
    check: ({ organizationId, userId, permission, resource }) =>
      failClosed(
        Effect.gen(function* () {
          const policy = yield* load(organizationId, userId)
          if (policy === undefined) {
            return {
              member: false,
              allowed: false,
              reason: "no such organization",
              revision: "0"
            } satisfies CheckAnswer
          }
          const { member, revision } = policy
          if (policy.denied !== undefined) return { member, allowed: false, reason: policy.denied, revision }
          const now = yield* Clock.currentTimeMillis
          const decision = decide(
            { subject: { id: userId }, permission, resource, now },
            policy.roles,
            policy.assignments
          )
          return { member, allowed: decision.allowed, reason: decision.reason, revision }
        })
      ),
    effective: (organizationId, userId) =>
      failClosed(
        Effect.gen(function* () {
          const policy = yield* load(organizationId, userId)
          if (policy === undefined || policy.denied !== undefined) {
            return { revision: policy?.revision ?? "0", permissions: [], scoped: {} }
          }
          const now = yield* Clock.currentTimeMillis
          const ancestors = closure(policy.roles)
          const allowedOn = (resource?: { type: string; id: string }) =>
            policy.catalog.filter(
              (permission) =>
                decide(
                  { subject: { id: userId }, permission, resource, now },
                  policy.roles,
                  policy.assignments,
                  ancestors
                ).allowed
            )
          const everywhere = allowedOn()
          const scoped: Record<string, ReadonlyArray<string>> = {}
          for (const assignment of policy.assignments) {
            if (assignment.scope === undefined) continue
            const key = `${assignment.scope.type}/${assignment.scope.id}`
            if (key in scoped) continue
            const extra = allowedOn(assignment.scope).filter((permission) => !everywhere.includes(permission))
            if (extra.length > 0) scoped[key] = extra
          }
          return { revision: policy.revision, permissions: everywhere, scoped }
        })
      ),
    notHeldBy: (organizationId, actorId, request) =>
      failClosed(
        Effect.gen(function* () {
          const policy = yield* load(organizationId, actorId)
          if (policy === undefined) return "org:read"
          const ancestors = closure(policy.roles)
          const byId = new Map(policy.roles.map((role) => [role.id, role]))
          const patterns = new Set(request.patterns ?? [])
          for (const roleId of request.roleIds ?? []) {
            for (const via of ancestors.get(roleId) ?? []) {
              for (const grant of byId.get(via)?.grants ?? []) {
                if (grant.effect === "allow") patterns.add(grant.permission)
              }
            }
          }
          const needed = new Set<string>()
          for (const pattern of patterns) {
            if (pattern === "*") needed.add(`${UNLISTED}:${UNLISTED}`)
            else if (pattern.endsWith(":*")) needed.add(`${pattern.slice(0, -1)}${UNLISTED}`)
            else needed.add(pattern)
            for (const key of policy.catalog) if (covers(pattern, key)) needed.add(key)
          }
          if (needed.size === 0) return undefined
          if (policy.denied !== undefined) return [...needed][0]
          const now = yield* Clock.currentTimeMillis
          for (const permission of needed) {
            const held = decide(
              { subject: { id: actorId }, permission, now },
              policy.roles,
              policy.assignments,
              ancestors
            )
            if (!held.allowed) return permission.includes(UNLISTED) ? wildcardOf(permission) : permission
          }
          return undefined
        })
      )
  })
})

export const PermissionStoreLive = Layer.effect(PermissionStore, make)
