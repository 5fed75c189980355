/** What the RBAC writers (roles, members, invitations) share: row decoding, the organization lock, the escalation rule. */
import type { SqlClient } from "@effect/sql"
import { Effect, Schema } from "effect"
import { Forbidden, NotFound } from "../../rpc/Errors.ts"
import type { GrantRequest, PermissionStoreShape } from "../../services/PermissionStore.ts"

/**
 * The rows of a statement decoded by `schema`: SQL errors stay failures (a transaction may mean
 * something by them); rows that do not decode are a defect (the schema and the table disagree).
 */
export const decodeRows = <A, I>(schema: Schema.Schema<A, I, never>) => {
  const decode = Schema.decodeUnknown(Schema.Array(schema))
  return <E, R>(statement: Effect.Effect<ReadonlyArray<unknown>, E, R>): Effect.Effect<ReadonlyArray<A>, E, R> =>
    Effect.flatMap(statement, (rows) => Effect.orDie(decode(rows)))
}

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
