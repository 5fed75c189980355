/** The `users` table as authentication reads and writes it: accounts, their passwords and profile. */
import { SqlClient, SqlSchema } from "@effect/sql"
import { Effect, Option, Schema } from "effect"
import { Me } from "../../rpc/Auth.ts"

/** Addresses are compared and stored trimmed and in lower case. */
export const normalizeEmail = (email: string) => email.trim().toLowerCase()

const UserRow = Schema.Struct({
  id: Schema.String,
  email: Schema.String,
  name: Schema.String,
  passwordHash: Schema.NullOr(Schema.String),
  disabledAt: Schema.NullOr(Schema.DateFromSelf),
  emailVerified: Schema.Boolean
})
export type UserRow = typeof UserRow.Type

const Id = Schema.Struct({ id: Schema.String })

const Profile = Schema.Struct({
  id: Schema.String,
  email: Schema.String,
  name: Schema.String,
  emailVerified: Schema.Boolean,
  mfaEnabled: Schema.Boolean,
  createdAt: Schema.DateTimeUtcFromDate
})

export const makeUsers = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient

  const byEmail = SqlSchema.findOne({
    Request: Schema.String,
    Result: UserRow,
    execute: (email) => sql`
      SELECT id, email, name, password_hash, disabled_at, email_verified_at IS NOT NULL AS email_verified
      FROM users WHERE lower(email) = ${normalizeEmail(email)}`
  })

  const byId = SqlSchema.findOne({
    Request: Schema.String,
    Result: UserRow,
    execute: (id) => sql`
      SELECT id, email, name, password_hash, disabled_at, email_verified_at IS NOT NULL AS email_verified
      FROM users WHERE id = ${id}`
  })

  /** `None` when the address is taken. */
  const create = SqlSchema.findOne({
    Request: Schema.Struct({ email: Schema.String, name: Schema.String, passwordHash: Schema.String }),
    Result: Id,
    execute: ({ email, name, passwordHash }) => sql`
      INSERT INTO users (email, name, password_hash) VALUES (${email}, ${name}, ${passwordHash})
      ON CONFLICT ((lower(email))) DO NOTHING RETURNING id`
  })

  const setPassword = SqlSchema.void({
    Request: Schema.Struct({ userId: Schema.String, passwordHash: Schema.String }),
    execute: ({ userId, passwordHash }) =>
      sql`UPDATE users SET password_hash = ${passwordHash}, updated_at = now() WHERE id = ${userId}`
  })

  const markEmailVerified = SqlSchema.void({
    Request: Schema.String,
    execute: (userId) =>
      sql`UPDATE users SET email_verified_at = coalesce(email_verified_at, now()) WHERE id = ${userId}`
  })

  const standing = SqlSchema.findOne({
    Request: Schema.String,
    Result: Schema.Struct({ emailVerified: Schema.Boolean }),
    execute: (id) => sql`SELECT email_verified_at IS NOT NULL AS email_verified FROM users WHERE id = ${id}`
  })

  const profile = SqlSchema.findOne({
    Request: Schema.String,
    Result: Profile,
    execute: (userId) => sql`
      SELECT u.id, u.email, u.name, u.email_verified_at IS NOT NULL AS email_verified,
             m.confirmed_at IS NOT NULL AS mfa_enabled, u.created_at
      FROM users u LEFT JOIN mfa_totp m ON m.user_id = u.id
      WHERE u.id = ${userId}`
  })

  const anyPlatformAdmin = SqlSchema.findOne({
    Request: Schema.Void,
    Result: Id,
    execute: () => sql`SELECT id FROM users WHERE is_platform_admin LIMIT 1`
  })

  /** Makes the address a platform administrator, creating its account (verified) if needed. */
  const makePlatformAdmin = SqlSchema.void({
    Request: Schema.Struct({ email: Schema.String, passwordHash: Schema.String }),
    execute: ({ email, passwordHash }) => sql`
      INSERT INTO users (email, name, password_hash, is_platform_admin, email_verified_at)
      VALUES (${normalizeEmail(email)}, 'Administrator', ${passwordHash}, true, now())
      ON CONFLICT ((lower(email))) DO UPDATE SET is_platform_admin = true`
  })

  // Every statement here is a plain read or write by key: a failure is a defect.
  return {
    byEmail: (email: string) => Effect.orDie(byEmail(email)),
    byId: (id: string) => Effect.orDie(byId(id)),
    /** Whether the account still exists (a token can outlive it) and its address is verified; fails with the SqlError. */
    standing: (id: string) => standing(id),
    create: (input: { readonly email: string; readonly name: string; readonly passwordHash: string }) =>
      Effect.orDie(create(input)),
    setPassword: (userId: string, passwordHash: string) => Effect.orDie(setPassword({ userId, passwordHash })),
    markEmailVerified: (userId: string) => Effect.orDie(markEmailVerified(userId)),
    /** The user's profile; none when the account is gone. */
    profile: (userId: string) => Effect.orDie(profile(userId)).pipe(Effect.map(Option.map((row) => new Me(row)))),
    anyPlatformAdmin: Effect.orDie(anyPlatformAdmin(undefined)),
    makePlatformAdmin: (email: string, passwordHash: string) => Effect.orDie(makePlatformAdmin({ email, passwordHash }))
  }
})

export type Users = Effect.Effect.Success<typeof makeUsers>
