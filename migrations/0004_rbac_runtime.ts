import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * What the RBAC API needs at run time: the expiry scheduler's marker on assignments, one
 * assignment per (user, role, scope), invitation ids and revocation, the revision on audit
 * entries, and an audit log that refuses UPDATE and DELETE.
 */
export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient

  // Set when the expiry scheduler has recorded `assignment.expired` for the row.
  yield* sql`ALTER TABLE assignments ADD COLUMN IF NOT EXISTS expiry_recorded_at timestamptz`
  yield* sql`CREATE INDEX IF NOT EXISTS assignments_pending_expiry_idx ON assignments (expires_at)
             WHERE expires_at IS NOT NULL AND expiry_recorded_at IS NULL`
  yield* sql`CREATE UNIQUE INDEX IF NOT EXISTS assignments_unique_idx
             ON assignments (organization_id, user_id, role_id, coalesce(scope_type, ''), coalesce(scope_id, ''))`

  yield* sql`ALTER TABLE invitations ADD COLUMN IF NOT EXISTS id uuid NOT NULL DEFAULT gen_random_uuid()`
  yield* sql`ALTER TABLE invitations ADD COLUMN IF NOT EXISTS revoked_at timestamptz`
  yield* sql`CREATE UNIQUE INDEX IF NOT EXISTS invitations_id_idx ON invitations (organization_id, id)`

  yield* sql`ALTER TABLE audit_log ADD COLUMN IF NOT EXISTS revision bigint`
  yield* sql`CREATE INDEX IF NOT EXISTS audit_log_org_action_idx ON audit_log (organization_id, action, id DESC)`
  yield* sql`
    CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION 'audit_log is append-only';
    END $$`
  yield* sql`DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log`
  yield* sql`CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
             FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()`
})
