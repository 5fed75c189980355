import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * Authentication: refresh-token sessions (one family per login), the tokens of each family,
 * one-time tokens (password reset, email verification, MFA step), TOTP factors and recovery codes.
 * Every secret is stored as a SHA-256 hash or encrypted, never as sent.
 */
export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient

  yield* sql`
    CREATE TABLE IF NOT EXISTS sessions (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
      created_at timestamptz NOT NULL DEFAULT now(),
      last_used_at timestamptz NOT NULL DEFAULT now(),
      idle_expires_at timestamptz NOT NULL,
      absolute_expires_at timestamptz NOT NULL,
      revoked_at timestamptz,
      revoked_reason text,
      ip text,
      user_agent text
    )`
  yield* sql`CREATE INDEX IF NOT EXISTS sessions_user_idx ON sessions (user_id) WHERE revoked_at IS NULL`
  yield* sql`CREATE INDEX IF NOT EXISTS sessions_revoked_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL`

  yield* sql`
    CREATE TABLE IF NOT EXISTS refresh_tokens (
      token_hash bytea PRIMARY KEY,
      session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
      created_at timestamptz NOT NULL DEFAULT now(),
      rotated_at timestamptz
    )`
  yield* sql`CREATE INDEX IF NOT EXISTS refresh_tokens_session_idx ON refresh_tokens (session_id)`

  yield* sql`
    CREATE TABLE IF NOT EXISTS one_time_tokens (
      token_hash bytea PRIMARY KEY,
      purpose text NOT NULL CHECK (purpose IN ('password_reset', 'email_verification', 'mfa_login')),
      user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
      expires_at timestamptz NOT NULL,
      used_at timestamptz,
      created_at timestamptz NOT NULL DEFAULT now()
    )`
  yield* sql`CREATE INDEX IF NOT EXISTS one_time_tokens_user_idx ON one_time_tokens (user_id, purpose)`

  yield* sql`
    CREATE TABLE IF NOT EXISTS mfa_totp (
      user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
      secret_encrypted text NOT NULL,
      confirmed_at timestamptz,
      last_used_step bigint NOT NULL DEFAULT 0,
      created_at timestamptz NOT NULL DEFAULT now()
    )`

  yield* sql`
    CREATE TABLE IF NOT EXISTS mfa_recovery_codes (
      code_hash bytea PRIMARY KEY,
      user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
      used_at timestamptz,
      created_at timestamptz NOT NULL DEFAULT now()
    )`
  yield* sql`CREATE INDEX IF NOT EXISTS mfa_recovery_codes_user_idx ON mfa_recovery_codes (user_id)`
})
