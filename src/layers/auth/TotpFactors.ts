/**
 * The `mfa_totp` and `mfa_recovery_codes` tables: an account's TOTP secret (sealed with the MFA
 * key), whether it is confirmed, the last time step used (each code once), and its recovery codes
 * (SHA-256 only).
 */
import { SqlClient, SqlSchema } from "@effect/sql"
import { Clock, Effect, Option, Schema } from "effect"
import { Keys } from "../../services/Keys.ts"
import * as Secrets from "../Secrets.ts"
import * as Totp from "./Totp.ts"

const Sealed = Schema.Struct({ secretEncrypted: Schema.String })
const Enrollment = Schema.Struct({ secretEncrypted: Schema.String, confirmedAt: Schema.NullOr(Schema.DateFromSelf) })
const Used = Schema.Struct({ userId: Schema.String })

export const makeTotpFactors = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const keys = yield* Keys
  const open = (sealed: string) => Totp.open(keys.mfaKey, sealed)

  const confirmed = SqlSchema.findOne({
    Request: Schema.String,
    Result: Sealed,
    execute: (userId) =>
      sql`SELECT secret_encrypted FROM mfa_totp WHERE user_id = ${userId} AND confirmed_at IS NOT NULL`
  })

  const enrollment = SqlSchema.findOne({
    Request: Schema.String,
    Result: Enrollment,
    execute: (userId) => sql`SELECT secret_encrypted, confirmed_at FROM mfa_totp WHERE user_id = ${userId}`
  })

  /** Replaces an unconfirmed secret; finds nothing when a confirmed one is there. */
  const enroll = SqlSchema.findOne({
    Request: Schema.Struct({ userId: Schema.String, secretEncrypted: Schema.String }),
    Result: Used,
    execute: (r) => sql`
      INSERT INTO mfa_totp (user_id, secret_encrypted) VALUES (${r.userId}, ${r.secretEncrypted})
      ON CONFLICT (user_id) DO UPDATE SET secret_encrypted = excluded.secret_encrypted, last_used_step = 0
      WHERE mfa_totp.confirmed_at IS NULL
      RETURNING user_id`
  })

  const useStep = SqlSchema.findOne({
    Request: Schema.Struct({ userId: Schema.String, step: Schema.Number }),
    Result: Used,
    execute: (r) => sql`
      UPDATE mfa_totp SET last_used_step = ${r.step}
      WHERE user_id = ${r.userId} AND last_used_step < ${r.step} RETURNING user_id`
  })

  const useRecoveryCode = SqlSchema.findOne({
    Request: Schema.Struct({ userId: Schema.String, code: Schema.String }),
    Result: Used,
    execute: (r) => sql`
      UPDATE mfa_recovery_codes SET used_at = now()
      WHERE user_id = ${r.userId} AND code_hash = ${Secrets.sha256(Totp.normalizeRecoveryCode(r.code))} AND used_at IS NULL
      RETURNING user_id`
  })

  return {
    /** The account's confirmed TOTP secret, if it has one. */
    confirmedSecret: (userId: string) =>
      confirmed(userId).pipe(Effect.orDie, Effect.map(Option.map((row) => open(row.secretEncrypted)))),
    /** A TOTP code (each time step once) or an unused recovery code; true when it was right. */
    verify: (userId: string, secret: string, code: string) =>
      Effect.gen(function* () {
        const step = Totp.matchingStep(secret, code, yield* Clock.currentTimeMillis)
        if (step !== undefined) return Option.isSome(yield* useStep({ userId, step }))
        return Option.isSome(yield* useRecoveryCode({ userId, code }))
      }).pipe(Effect.orDie),
    /** Starts (or restarts) enrolment with `secret`; false when a confirmed factor is in place. */
    enroll: (userId: string, secret: string) =>
      enroll({ userId, secretEncrypted: Totp.seal(keys.mfaKey, secret) }).pipe(Effect.orDie, Effect.map(Option.isSome)),
    /** The factor being enrolled or in place, with its secret opened. */
    enrollment: (userId: string) =>
      enrollment(userId).pipe(
        Effect.orDie,
        Effect.map(Option.map((row) => ({ secret: open(row.secretEncrypted), confirmed: row.confirmedAt !== null })))
      ),
    /** Confirms the factor at the step its first code used, with a fresh set of recovery codes. */
    confirm: (userId: string, step: number, recoveryCodes: ReadonlyArray<string>) =>
      Effect.gen(function* () {
        yield* sql`UPDATE mfa_totp SET confirmed_at = now(), last_used_step = ${step} WHERE user_id = ${userId}`
        yield* sql`DELETE FROM mfa_recovery_codes WHERE user_id = ${userId}`
        yield* sql`INSERT INTO mfa_recovery_codes ${sql.insert(
          recoveryCodes.map((c) => ({ codeHash: Secrets.sha256(Totp.normalizeRecoveryCode(c)), userId }))
        )}`
      }).pipe(sql.withTransaction, Effect.orDie),
    /** Removes the factor and its recovery codes. */
    remove: (userId: string) =>
      Effect.all([
        sql`DELETE FROM mfa_totp WHERE user_id = ${userId}`,
        sql`DELETE FROM mfa_recovery_codes WHERE user_id = ${userId}`
      ]).pipe(sql.withTransaction, Effect.orDie)
  }
})

export type TotpFactors = Effect.Effect.Success<typeof makeTotpFactors>
