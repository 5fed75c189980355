/**
 * A platform administrator's repair of an organization whose owners lost their access (S45): the
 * user becomes a member if they are not, loses every assignment of a role carrying a deny, and
 * holds the owner role organization-wide with no expiry. One transaction with its events and an
 * audit entry (`organization.owner_restored`); nothing changes, and no revision is made, when the
 * user already is such an owner. Shared by `POST /v1/admin/orgs/{id}/owners/{userId}` and
 * `yarn admin restore-owner`.
 */
import type { SqlClient } from "@effect/sql"
import { Effect, Schema } from "effect"
import { assignmentsOf, grantsOfRoles, isOwner } from "../../domain/Authority.ts"
import { NotFound } from "../../rpc/Errors.ts"
import type { AuditLogShape, RequestMeta } from "../../services/AuditLog.ts"
import { event } from "../../services/Events.ts"
import type { NewEvent, OutboxShape } from "../../services/Outbox.ts"
import { decodeRows } from "../Sql.ts"
import { lockOrganization, readAuthority } from "./RbacSql.ts"

const Id = Schema.Struct({ id: Schema.String })
const RevisionRow = Schema.Struct({ revision: Schema.String })

export interface Restored {
  readonly revision: string
  /** Whether anything changed (false: the user already was an owner carrying no deny). */
  readonly changed: boolean
  /** The assignments of deny-carrying roles taken away. */
  readonly removedAssignments: number
}

export const restoreOwner = (
  deps: { readonly sql: SqlClient.SqlClient; readonly outbox: OutboxShape; readonly audit: AuditLogShape },
  request: {
    readonly actorId: string | null
    readonly organizationId: string
    readonly userId: string
    readonly meta?: RequestMeta | undefined
  }
) => {
  const { sql, outbox, audit } = deps
  const { organizationId, userId } = request
  return Effect.gen(function* () {
    yield* lockOrganization(sql, organizationId)
    const user = yield* sql`SELECT id::text AS id FROM users WHERE id = ${userId}`.pipe(decodeRows(Id))
    if (user.length === 0) return yield* new NotFound({ message: "No such user" })
    const org = yield* readAuthority(sql, organizationId)
    const joined = yield* sql`
      INSERT INTO memberships (organization_id, user_id) VALUES (${organizationId}, ${userId})
      ON CONFLICT DO NOTHING RETURNING user_id::text AS id`.pipe(decodeRows(Id))
    const denying = assignmentsOf(org, userId).filter((a) =>
      grantsOfRoles(org.policy, [a.roleId]).some((grant) => grant.effect === "deny")
    )
    const wasOwner = isOwner(org, userId)
    const events: Array<NewEvent> = joined.length > 0 ? [event("member.added", { userId })] : []
    for (const assignment of denying) {
      yield* sql`DELETE FROM assignments WHERE organization_id = ${organizationId} AND id = ${assignment.id}`
      events.push(
        event("assignment.removed", {
          assignmentId: assignment.id,
          userId,
          roleId: assignment.roleId,
          ...(assignment.scope === undefined ? {} : { scope: assignment.scope })
        })
      )
    }
    if (!wasOwner) {
      // An expired (or expiring) owner assignment makes way for one that does not expire.
      yield* sql`
        DELETE FROM assignments WHERE organization_id = ${organizationId} AND user_id = ${userId}
          AND role_id = ${org.ownerRoleId} AND scope_type IS NULL`
      const [given] = yield* sql`
        INSERT INTO assignments (organization_id, user_id, role_id, granted_by)
        VALUES (${organizationId}, ${userId}, ${org.ownerRoleId}, ${request.actorId})
        RETURNING id::text AS id`.pipe(decodeRows(Id))
      events.push(event("assignment.added", { assignmentId: given!.id, userId, roleId: org.ownerRoleId }))
    }
    const [first, ...rest] = events
    if (first === undefined) {
      const [current] = yield* sql`
        SELECT revision::text AS revision FROM organizations WHERE id = ${organizationId}`.pipe(decodeRows(RevisionRow))
      return { revision: current!.revision, changed: false, removedAssignments: 0 } satisfies Restored
    }
    const revision = yield* outbox.record(organizationId, [first, ...rest])
    yield* audit.record({
      action: "organization.owner_restored",
      actorId: request.actorId,
      organizationId,
      target: `user:${userId}`,
      data: {
        before: { member: joined.length === 0, owner: wasOwner, denyingAssignments: denying.map((a) => a.id) },
        after: { member: true, owner: true }
      },
      ...(request.meta === undefined ? {} : { meta: request.meta }),
      revision
    })
    return { revision, changed: true, removedAssignments: denying.length } satisfies Restored
  }).pipe(outbox.transaction)
}
