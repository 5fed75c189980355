import { Clock, Effect, Layer, Option } from "effect"
import { RecoveryCodes, TotpEnrollment } from "../../rpc/Auth.ts"
import { Conflict, InvalidInput } from "../../rpc/Errors.ts"
import { AuditLog } from "../../services/AuditLog.ts"
import { Mfa } from "../../services/Mfa.ts"
import { PasswordHasher } from "../../services/PasswordHasher.ts"
import { makeNotices } from "./Notices.ts"
import { ProfileCache } from "./ProfileCache.ts"
import { makeThrottle } from "./Throttle.ts"
import * as Totp from "./Totp.ts"
import { makeTotpFactors } from "./TotpFactors.ts"
import { makeUsers } from "./Users.ts"

const alreadyOn = new Conflict({ code: "mfa_already_enabled", message: "MFA is already on" })
const invalidCode = new InvalidInput({ code: "invalid_code", field: "code", message: "The code is not valid" })

export const make = Effect.gen(function* () {
  const hasher = yield* PasswordHasher
  const audit = yield* AuditLog
  const throttle = yield* makeThrottle
  const users = yield* makeUsers
  const factors = yield* makeTotpFactors
  const notices = yield* makeNotices(users)
  const profiles = yield* ProfileCache

  return Mfa.of({
    enrollTotp: Effect.fn("Mfa.enrollTotp")(function* (user, meta) {
      const account = yield* users.byId(user.userId).pipe(Effect.flatMap(Effect.orDie))
      const secret = Totp.newSecret()
      if (!(yield* factors.enroll(user.userId, secret))) return yield* alreadyOn
      yield* audit.record({ action: "mfa.enroll_started", actorId: user.userId, meta })
      return new TotpEnrollment({ secret, otpauthUrl: Totp.otpauthUrl(secret, account.email) })
    }),

    confirmTotp: Effect.fn("Mfa.confirmTotp")(function* (user, code, meta) {
      yield* throttle.checkGuesses("mfa", user.userId)
      const enrollment = yield* factors.enrollment(user.userId)
      if (Option.isNone(enrollment)) return yield* new Conflict({ code: "mfa_not_enrolled", message: "Enroll first" })
      if (enrollment.value.confirmed) return yield* alreadyOn
      const step = Totp.matchingStep(enrollment.value.secret, code, yield* Clock.currentTimeMillis)
      if (step === undefined) {
        yield* throttle.wrongGuess("mfa", user.userId)
        return yield* invalidCode
      }
      yield* throttle.rightGuess("mfa", user.userId)
      const codes = Totp.newRecoveryCodes()
      yield* profiles.changeWith(user.userId, factors.confirm(user.userId, step, codes))
      yield* notices.notify(
        user.userId,
        "Two-factor authentication is on",
        "An authenticator app was added to your account."
      )
      yield* audit.record({ action: "mfa.enabled", actorId: user.userId, meta })
      return new RecoveryCodes({ recoveryCodes: codes })
    }),

    disableTotp: Effect.fn("Mfa.disableTotp")(function* (user, { password, code }, meta) {
      yield* throttle.checkGuesses("mfa", user.userId)
      const account = yield* users.byId(user.userId)
      const stored = Option.flatMap(account, (a) => Option.fromNullable(a.passwordHash))
      if (!(yield* hasher.verify(stored, password))) {
        yield* throttle.wrongGuess("mfa", user.userId)
        return yield* new InvalidInput({
          code: "wrong_password",
          field: "password",
          message: "The password is not correct"
        })
      }
      const secret = yield* factors.confirmedSecret(user.userId)
      if (Option.isNone(secret)) return yield* new Conflict({ code: "mfa_not_enabled", message: "MFA is not on" })
      if (!(yield* factors.verify(user.userId, secret.value, code))) {
        yield* throttle.wrongGuess("mfa", user.userId)
        return yield* invalidCode
      }
      yield* throttle.rightGuess("mfa", user.userId)
      yield* profiles.changeWith(user.userId, factors.remove(user.userId))
      yield* notices.notify(
        user.userId,
        "Two-factor authentication is off",
        "The authenticator app was removed from your account."
      )
      yield* audit.record({ action: "mfa.disabled", actorId: user.userId, meta })
    })
  })
})

export const MfaLive = Layer.effect(Mfa, make)
