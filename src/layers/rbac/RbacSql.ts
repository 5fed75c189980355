/** What the RBAC layers share: their writers' dependencies, the policy's rows, the organization lock, the escalation rule. */
import { SqlClient } from "@effect/sql"
import { Effect, Schema } from "effect"
import { Forbidden, NotFound } from "../../rpc/Errors.ts"
import { Condition } from "../../rpc/Roles.ts"
import { AuditLog } from "../../services/AuditLog.ts"
import { Outbox } from "../../services/Outbox.ts"
import type { GrantRequest, PermissionStoreShape } from "../../services/PermissionStore.ts"

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

/** Refuses to give what the actor does not hold organization-wide: 403 naming the first such permission. */
export const refuseEscalation = (
  store: PermissionStoreShape,
  organizationId: string,
  actorId: string,
  request: GrantRequest
) =>
  Effect.flatMap(store.notHeldBy(organizationId, actorId, request), (missing) =>
    missing === undefined
      ? Effect.void
      : Effect.fail(new Forbidden({ message: `You cannot give ${missing}: you do not hold it` }))
  )
