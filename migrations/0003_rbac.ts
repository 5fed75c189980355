import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * Multi-tenant RBAC: the permission catalog (built-in keys have no organization), roles per
 * organization with an inheritance DAG, grants, scoped and expiring assignments, invitations.
 * Every organization-owned row carries organization_id, and references between them include it,
 * so a row of one organization can never point at a row of another.
 */
export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient

  yield* sql`
    CREATE TABLE IF NOT EXISTS permissions (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      organization_id uuid REFERENCES organizations (id) ON DELETE CASCADE,
      key text NOT NULL CHECK (key ~ '^[a-z][a-z0-9_.-]*:[a-z][a-z0-9_.-]*$'),
      description text NOT NULL DEFAULT '',
      created_at timestamptz NOT NULL DEFAULT now()
    )`
  yield* sql`CREATE UNIQUE INDEX IF NOT EXISTS permissions_builtin_key ON permissions (key) WHERE organization_id IS NULL`
  yield* sql`CREATE UNIQUE INDEX IF NOT EXISTS permissions_org_key ON permissions (organization_id, key)
             WHERE organization_id IS NOT NULL`

  yield* sql`
    CREATE TABLE IF NOT EXISTS roles (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
      name text NOT NULL,
      description text NOT NULL DEFAULT '',
      is_system boolean NOT NULL DEFAULT false,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      UNIQUE (organization_id, id),
      UNIQUE (organization_id, name)
    )`

  yield* sql`
    CREATE TABLE IF NOT EXISTS role_parents (
      organization_id uuid NOT NULL,
      role_id uuid NOT NULL,
      parent_id uuid NOT NULL,
      PRIMARY KEY (role_id, parent_id),
      CHECK (role_id <> parent_id),
      FOREIGN KEY (organization_id, role_id) REFERENCES roles (organization_id, id) ON DELETE CASCADE,
      FOREIGN KEY (organization_id, parent_id) REFERENCES roles (organization_id, id) ON DELETE CASCADE
    )`
  yield* sql`CREATE INDEX IF NOT EXISTS role_parents_parent_idx ON role_parents (parent_id)`

  yield* sql`
    CREATE TABLE IF NOT EXISTS role_grants (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      organization_id uuid NOT NULL,
      role_id uuid NOT NULL,
      permission text NOT NULL CHECK (permission ~ '^(\\*|[a-z][a-z0-9_.-]*:(\\*|[a-z][a-z0-9_.-]*))$'),
      effect text NOT NULL CHECK (effect IN ('allow', 'deny')),
      condition jsonb,
      FOREIGN KEY (organization_id, role_id) REFERENCES roles (organization_id, id) ON DELETE CASCADE
    )`
  yield* sql`CREATE INDEX IF NOT EXISTS role_grants_role_idx ON role_grants (role_id)`

  yield* sql`
    CREATE TABLE IF NOT EXISTS assignments (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      organization_id uuid NOT NULL,
      user_id uuid NOT NULL,
      role_id uuid NOT NULL,
      scope_type text,
      scope_id text,
      expires_at timestamptz,
      granted_by uuid REFERENCES users (id) ON DELETE SET NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      CHECK ((scope_type IS NULL) = (scope_id IS NULL)),
      FOREIGN KEY (organization_id, role_id) REFERENCES roles (organization_id, id) ON DELETE CASCADE,
      FOREIGN KEY (organization_id, user_id) REFERENCES memberships (organization_id, user_id) ON DELETE CASCADE
    )`
  yield* sql`CREATE INDEX IF NOT EXISTS assignments_user_idx ON assignments (organization_id, user_id)`
  yield* sql`CREATE INDEX IF NOT EXISTS assignments_role_idx ON assignments (role_id)`
  yield* sql`CREATE INDEX IF NOT EXISTS assignments_expiry_idx ON assignments (expires_at) WHERE expires_at IS NOT NULL`

  yield* sql`
    CREATE TABLE IF NOT EXISTS invitations (
      token_hash bytea PRIMARY KEY,
      organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
      email text NOT NULL,
      role_ids uuid[] NOT NULL DEFAULT '{}',
      invited_by uuid REFERENCES users (id) ON DELETE SET NULL,
      expires_at timestamptz NOT NULL,
      accepted_at timestamptz,
      created_at timestamptz NOT NULL DEFAULT now()
    )`
  yield* sql`CREATE INDEX IF NOT EXISTS invitations_org_idx ON invitations (organization_id)`

  yield* sql`CREATE INDEX IF NOT EXISTS outbox_created_idx ON outbox (created_at)`
})
