/** What the RBAC layers share: their writers' dependencies, the policy's rows, the organization lock, the authority rules' view. */
import { SqlClient } from "@effect/sql"
import { Clock, Effect, Schema } from "effect"
import {
  grantsOfRoles,
  type Held,
  type Organization,
  type Refusal,
  type RoleRef,
  refuseRoleChange
} from "../../domain/Authority.ts"
import type { Grant } from "../../domain/Decision.ts"
import { makePolicy, type Policy } from "../../domain/Policy.ts"
import { assembleRoles } from "../../domain/RoleGraph.ts"
import { Conflict, Forbidden, NotFound } from "../../rpc/Errors.ts"
import { Condition } from "../../rpc/Roles.ts"
import type { Member } from "../../rpc/Security.ts"
import { AuditLog } from "../../services/AuditLog.ts"
import { Outbox } from "../../services/Outbox.ts"
import { decodeRows } from "../Sql.ts"

/** What every RBAC writer takes: SQL, the outbox (revision and events) and the audit log. */
export const Writer = Effect.all({ sql: SqlClient.SqlClient, outbox: Outbox, audit: AuditLog })

/** A `role_parents` row. */
export const ParentRow = Schema.Struct({ roleId: Schema.String, parentId: Schema.String })

/** A `role_grants` row, selected with `condition::text AS condition`. */
export const GrantRow = Schema.Struct({
  roleId: Schema.String,
  permission: Schema.String,
  effect: Schema.Literal("allow", "deny"),
  /** jsonb as text, so no name transform of the client touches its keys. */
  condition: Schema.NullOr(Schema.parseJson(Condition))
})

/**
 * Takes the organization's row lock (the one `Outbox.record` takes) for the rest of the
 * transaction, so rules are checked on what is committed once earlier writers are done.
 */
export const lockOrganization = (sql: SqlClient.SqlClient, organizationId: string) =>
  sql`SELECT 1 FROM organizations WHERE id = ${organizationId} FOR NO KEY UPDATE`.pipe(
    Effect.flatMap((rows) => (rows.length === 0 ? new NotFound({ message: "No such organization" }) : Effect.void))
  )

const RoleRow = Schema.Struct({ id: Schema.String, name: Schema.String, isSystem: Schema.Boolean })
const KeyRow = Schema.Struct({ key: Schema.String })
const HeldRow = Schema.Struct({
  id: Schema.String,
  userId: Schema.String,
  roleId: Schema.String,
  scopeType: Schema.NullOr(Schema.String),
  scopeId: Schema.NullOr(Schema.String),
  expiresAt: Schema.NullOr(Schema.DateFromSelf)
})

/**
 * The organization as the authority rules (domain/Authority.ts) see it now: its policy and every
 * unexpired assignment. Read inside the writer's transaction, after the organization lock, so the
 * rules judge what is committed.
 */
export const readAuthority = (sql: SqlClient.SqlClient, organizationId: string) =>
  Effect.gen(function* () {
    const now = yield* Clock.currentTimeMillis
    // One after another: a pg client runs one query at a time (overlapping them is deprecated in pg 8).
    const { roles, parents, grants, catalog, held } = yield* Effect.all({
      roles: sql`
          SELECT id::text AS id, name, is_system FROM roles WHERE organization_id = ${organizationId}`.pipe(
        decodeRows(RoleRow)
      ),
      parents: sql`
          SELECT role_id::text AS role_id, parent_id::text AS parent_id FROM role_parents
          WHERE organization_id = ${organizationId}`.pipe(decodeRows(ParentRow)),
      grants: sql`
          SELECT role_id::text AS role_id, permission, effect, condition::text AS condition FROM role_grants
          WHERE organization_id = ${organizationId}`.pipe(decodeRows(GrantRow)),
      catalog: sql`
          SELECT DISTINCT key FROM permissions WHERE organization_id IS NULL OR organization_id = ${organizationId}
          ORDER BY key`.pipe(decodeRows(KeyRow)),
      held: sql`
          SELECT id::text AS id, user_id::text AS user_id, role_id::text AS role_id, scope_type, scope_id, expires_at
          FROM assignments
          WHERE organization_id = ${organizationId} AND (expires_at IS NULL OR expires_at > ${new Date(now)})`.pipe(
        decodeRows(HeldRow)
      )
    })
    const graph = assembleRoles(
      roles,
      parents,
      grants.map((grant) => ({ ...grant, condition: grant.condition ?? undefined }))
    )
    return {
      policy: makePolicy(
        graph,
        catalog.map((row) => row.key)
      ),
      ownerRoleId: roles.find((role) => role.isSystem && role.name === "owner")?.id ?? "",
      systemRoleIds: new Set(roles.filter((role) => role.isSystem).map((role) => role.id)),
      assignments: held.map(
        (row): Held => ({
          id: row.id,
          userId: row.userId,
          roleId: row.roleId,
          scope: row.scopeType !== null && row.scopeId !== null ? { type: row.scopeType, id: row.scopeId } : undefined,
          expiresAt: row.expiresAt?.getTime()
        })
      ),
      now
    } satisfies Organization
  }).pipe(Effect.orDie)

/** A refusal of the authority rules as the error both doors answer: 403, or 409 `system_role`. */
export const refuse = (refusal: Refusal | undefined): Effect.Effect<void, Forbidden | Conflict> =>
  refusal === undefined
    ? Effect.void
    : refusal.kind === "system_role"
      ? Effect.fail(new Conflict({ code: "system_role", message: refusal.message }))
      : Effect.fail(new Forbidden({ message: refusal.message }))

/**
 * Refuses a change of what `role` gives (absent: a new role) from its grants with its ancestors'
 * now to what `after` makes of them, by the rules of domain/Authority.ts.
 */
export const authoriseRoleChange = (
  sql: SqlClient.SqlClient,
  member: Member,
  role: RoleRef | undefined,
  after: (policy: Policy) => ReadonlyArray<Grant>
) =>
  Effect.gen(function* () {
    const org = yield* readAuthority(sql, member.organizationId)
    const before = role === undefined ? [] : grantsOfRoles(org.policy, [role.id])
    yield* refuse(refuseRoleChange(org, member.userId, role, before, after(org.policy)))
  })
