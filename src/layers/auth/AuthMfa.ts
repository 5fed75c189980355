import { Clock, Effect, Option } from "effect"
import { RecoveryCodes, TotpEnrollment } from "../../rpc/Auth.ts"
import { Conflict, InvalidInput } from "../../rpc/Errors.ts"
import type { AuthShape } from "../../services/Auth.ts"
import * as Secrets from "../Secrets.ts"
import type { AuthSupport } from "./AuthSupport.ts"
import * as Totp from "./Totp.ts"

/** TOTP enrolment, confirmation (with recovery codes) and removal. */
export const makeMfa = (support: AuthSupport): Pick<AuthShape, "enrollTotp" | "confirmTotp" | "disableTotp"> => {
  const {
    sql,
    hasher,
    audit,
    keys,
    checkGuesses,
    wrongGuess,
    rightGuess,
    findById,
    confirmedSecret,
    checkSecondFactor,
    notify
  } = support
  return {
    enrollTotp: (user, meta) =>
      Effect.gen(function* () {
        const account = yield* findById(user.userId).pipe(Effect.flatMap(Effect.orDie))
        const secret = Totp.newSecret()
        const rows = yield* sql`
          INSERT INTO mfa_totp (user_id, secret_encrypted) VALUES (${user.userId}, ${Totp.seal(keys.mfaKey, secret)})
          ON CONFLICT (user_id) DO UPDATE SET secret_encrypted = excluded.secret_encrypted, last_used_step = 0
          WHERE mfa_totp.confirmed_at IS NULL
          RETURNING user_id`.pipe(Effect.orDie)
        if (rows.length === 0) return yield* new Conflict({ code: "mfa_already_enabled", message: "MFA is already on" })
        yield* audit.record({ action: "mfa.enroll_started", actorId: user.userId, meta })
        return new TotpEnrollment({ secret, otpauthUrl: Totp.otpauthUrl(secret, account.email) })
      }),

    confirmTotp: (user, code, meta) =>
      Effect.gen(function* () {
        yield* checkGuesses("mfa", user.userId)
        const [row] = yield* sql<{ secretEncrypted: string; confirmedAt: Date | null }>`
          SELECT secret_encrypted, confirmed_at FROM mfa_totp WHERE user_id = ${user.userId}`.pipe(Effect.orDie)
        if (row === undefined) return yield* new Conflict({ code: "mfa_not_enrolled", message: "Enroll first" })
        if (row.confirmedAt !== null) {
          return yield* new Conflict({ code: "mfa_already_enabled", message: "MFA is already on" })
        }
        const secret = Totp.open(keys.mfaKey, row.secretEncrypted)
        const step = Totp.matchingStep(secret, code, yield* Clock.currentTimeMillis)
        if (step === undefined) {
          yield* wrongGuess("mfa", user.userId)
          return yield* new InvalidInput({ code: "invalid_code", field: "code", message: "The code is not valid" })
        }
        yield* rightGuess("mfa", user.userId)
        const codes = Totp.newRecoveryCodes()
        yield* Effect.gen(function* () {
          yield* sql`UPDATE mfa_totp SET confirmed_at = now(), last_used_step = ${step} WHERE user_id = ${user.userId}`
          yield* sql`DELETE FROM mfa_recovery_codes WHERE user_id = ${user.userId}`
          yield* sql`INSERT INTO mfa_recovery_codes ${sql.insert(
            codes.map((c) => ({ codeHash: Secrets.sha256(Totp.normalizeRecoveryCode(c)), userId: user.userId }))
          )}`
        }).pipe(sql.withTransaction, Effect.orDie)
        yield* notify(user.userId, "Two-factor authentication is on", "An authenticator app was added to your account.")
        yield* audit.record({ action: "mfa.enabled", actorId: user.userId, meta })
        return new RecoveryCodes({ recoveryCodes: codes })
      }),

    disableTotp: (user, { password, code }, meta) =>
      Effect.gen(function* () {
        yield* checkGuesses("mfa", user.userId)
        const account = yield* findById(user.userId)
        const stored = Option.flatMap(account, (a) => Option.fromNullable(a.passwordHash))
        if (!(yield* hasher.verify(stored, password))) {
          yield* wrongGuess("mfa", user.userId)
          return yield* new InvalidInput({
            code: "wrong_password",
            field: "password",
            message: "The password is not correct"
          })
        }
        const secret = yield* confirmedSecret(user.userId)
        if (Option.isNone(secret)) return yield* new Conflict({ code: "mfa_not_enabled", message: "MFA is not on" })
        if (!(yield* checkSecondFactor(user.userId, secret.value, code))) {
          yield* wrongGuess("mfa", user.userId)
          return yield* new InvalidInput({ code: "invalid_code", field: "code", message: "The code is not valid" })
        }
        yield* rightGuess("mfa", user.userId)
        yield* Effect.all([
          sql`DELETE FROM mfa_totp WHERE user_id = ${user.userId}`,
          sql`DELETE FROM mfa_recovery_codes WHERE user_id = ${user.userId}`
        ]).pipe(sql.withTransaction, Effect.orDie)
        yield* notify(
          user.userId,
          "Two-factor authentication is off",
          "The authenticator app was removed from your account."
        )
        yield* audit.record({ action: "mfa.disabled", actorId: user.userId, meta })
      })
  }
}
