/**
 * The `one_time_tokens` table: single-use tokens mailed or handed out for one purpose (password
 * reset, email verification, the second step of an MFA login), stored as SHA-256 only.
 */
import { SqlClient, SqlSchema } from "@effect/sql"
import { Clock, Duration, Effect, Option, Schema } from "effect"
import * as Secrets from "../Secrets.ts"
import { invalidToken } from "./Credentials.ts"

/** How long each kind of one-time token lives. */
export const TTL = {
  passwordReset: Duration.minutes(30),
  emailVerification: Duration.hours(24),
  mfaLogin: Duration.minutes(5)
}

export type Purpose = "password_reset" | "email_verification" | "mfa_login"

const Holder = Schema.Struct({ userId: Schema.String })
const Request = Schema.Struct({ token: Schema.String, purpose: Schema.String })

export const makeOneTimeTokens = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient

  const insert = SqlSchema.void({
    Request: Schema.Struct({
      token: Schema.String,
      purpose: Schema.String,
      userId: Schema.String,
      expiresAt: Schema.DateFromSelf
    }),
    execute: (r) => sql`
      INSERT INTO one_time_tokens (token_hash, purpose, user_id, expires_at)
      VALUES (${Secrets.sha256(r.token)}, ${r.purpose}, ${r.userId}, ${r.expiresAt})`
  })

  const holder = SqlSchema.findOne({
    Request,
    Result: Holder,
    execute: (r) => sql`
      SELECT user_id FROM one_time_tokens
      WHERE token_hash = ${Secrets.sha256(r.token)} AND purpose = ${r.purpose} AND used_at IS NULL AND expires_at > now()`
  })

  const use = SqlSchema.findOne({
    Request,
    Result: Holder,
    execute: (r) => sql`
      UPDATE one_time_tokens SET used_at = now()
      WHERE token_hash = ${Secrets.sha256(r.token)} AND purpose = ${r.purpose} AND used_at IS NULL AND expires_at > now()
      RETURNING user_id`
  })

  const useAll = SqlSchema.void({
    Request: Schema.Struct({ userId: Schema.String, purpose: Schema.String }),
    execute: (r) => sql`
      UPDATE one_time_tokens SET used_at = now()
      WHERE user_id = ${r.userId} AND purpose = ${r.purpose} AND used_at IS NULL`
  })

  return {
    /** A fresh token for the user, valid for `ttl`. */
    issue: (userId: string, purpose: Purpose, ttl: Duration.Duration) =>
      Effect.gen(function* () {
        const token = Secrets.newToken()
        const expiresAt = new Date((yield* Clock.currentTimeMillis) + Duration.toMillis(ttl))
        yield* insert({ token, purpose, userId, expiresAt })
        return token
      }).pipe(Effect.orDie),
    /** Whose valid token this is, without using it. */
    holder: (token: string, purpose: Purpose) =>
      holder({ token, purpose }).pipe(Effect.orDie, Effect.map(Option.map((row) => row.userId))),
    /** Uses the token; of concurrent callers, one gets the user id, the others `invalid_token`. */
    consume: (token: string, purpose: Purpose) =>
      use({ token, purpose }).pipe(
        Effect.orDie,
        Effect.flatMap(
          Option.match({ onNone: () => Effect.fail(invalidToken), onSome: (row) => Effect.succeed(row.userId) })
        )
      ),
    /** Uses every outstanding token of the user for `purpose`. */
    consumeAll: (userId: string, purpose: Purpose) => Effect.orDie(useAll({ userId, purpose }))
  }
})

export type OneTimeTokens = Effect.Effect.Success<typeof makeOneTimeTokens>
