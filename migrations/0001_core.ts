import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * Core tables: accounts, tenants with their permission revision, memberships, the transactional
 * outbox and the audit log. Later migrations add sessions, roles, grants and the rest.
 */
export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient

  yield* sql`
    CREATE TABLE IF NOT EXISTS users (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      email text NOT NULL,
      name text NOT NULL,
      password_hash text,
      email_verified_at timestamptz,
      disabled_at timestamptz,
      is_platform_admin boolean NOT NULL DEFAULT false,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    )`
  yield* sql`CREATE UNIQUE INDEX IF NOT EXISTS users_email_key ON users (lower(email))`

  yield* sql`
    CREATE TABLE IF NOT EXISTS organizations (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      slug text NOT NULL UNIQUE,
      name text NOT NULL,
      status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'frozen')),
      revision bigint NOT NULL DEFAULT 0,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    )`

  yield* sql`
    CREATE TABLE IF NOT EXISTS memberships (
      organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
      user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (organization_id, user_id)
    )`
  yield* sql`CREATE INDEX IF NOT EXISTS memberships_user_idx ON memberships (user_id)`

  yield* sql`
    CREATE TABLE IF NOT EXISTS outbox (
      id bigserial PRIMARY KEY,
      organization_id uuid,
      revision bigint,
      event_type text NOT NULL,
      payload jsonb NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      published_at timestamptz
    )`
  yield* sql`CREATE INDEX IF NOT EXISTS outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL`
  yield* sql`CREATE INDEX IF NOT EXISTS outbox_org_revision_idx ON outbox (organization_id, revision)`

  yield* sql`
    CREATE TABLE IF NOT EXISTS audit_log (
      id bigserial PRIMARY KEY,
      organization_id uuid,
      actor_id uuid,
      action text NOT NULL,
      target text,
      ip text,
      user_agent text,
      request_id text,
      data jsonb NOT NULL DEFAULT '{}'::jsonb,
      created_at timestamptz NOT NULL DEFAULT now()
    )`
  yield* sql`CREATE INDEX IF NOT EXISTS audit_log_org_idx ON audit_log (organization_id, id DESC)`
})
