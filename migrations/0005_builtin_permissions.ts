import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * The built-in permission keys (they belong to no organization), seeded once here instead of at
 * every start. The list is this migration's own copy, as src/domain/Catalog.ts had it when it was
 * written: a migration records history and must mean the same thing forever. A key added to the
 * catalog later comes with a migration of its own; test/migrations.test.ts fails until it does.
 * Running it again changes nothing.
 */
const BUILT_IN = [
  ["org:read", "See the organization"],
  ["org:update", "Rename the organization"],
  ["org:delete", "Delete the organization"],
  ["members:read", "List members"],
  ["members:invite", "Invite people"],
  ["members:remove", "Remove members"],
  ["permissions:read", "See the permission catalog"],
  ["permissions:create", "Add permissions to the catalog"],
  ["roles:read", "See roles"],
  ["roles:create", "Create roles"],
  ["roles:update", "Change roles, their parents and grants"],
  ["roles:delete", "Delete roles"],
  ["assignments:read", "See who holds which role"],
  ["assignments:create", "Give roles"],
  ["assignments:delete", "Take roles away"],
  ["authz:check", "Check or explain another user's permissions"],
  ["audit:read", "Read the audit log"]
] as const

export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`
    INSERT INTO permissions (key, description)
    SELECT * FROM unnest(${BUILT_IN.map(([key]) => key)}::text[], ${BUILT_IN.map(([, description]) => description)}::text[])
    ON CONFLICT (key) WHERE organization_id IS NULL DO UPDATE SET description = excluded.description`
})
