import { Effect, Layer, Option } from "effect"
import { Accepted } from "../../rpc/Auth.ts"
import { InvalidInput } from "../../rpc/Errors.ts"
import { Accounts } from "../../services/Accounts.ts"
import { AuditLog } from "../../services/AuditLog.ts"
import { PasswordHasher } from "../../services/PasswordHasher.ts"
import { Revocations } from "../../services/Revocations.ts"
import { Sessions } from "../../services/Sessions.ts"
import { Settings } from "../Settings.ts"
import { checkPolicy } from "./Credentials.ts"
import { makeNotices } from "./Notices.ts"
import { makeOneTimeTokens, TTL } from "./OneTimeTokens.ts"
import { makeThrottle } from "./Throttle.ts"
import { makeUsers, normalizeEmail } from "./Users.ts"

export const make = Effect.gen(function* () {
  const hasher = yield* PasswordHasher
  const audit = yield* AuditLog
  const sessions = yield* Sessions
  const revocations = yield* Revocations
  const publicUrl = yield* Settings.publicUrl
  const throttle = yield* makeThrottle
  const users = yield* makeUsers
  const oneTime = yield* makeOneTimeTokens
  const notices = yield* makeNotices(users)

  /** Ends the user's sessions (but `except`) in Postgres, then everywhere at once. */
  const endSessions = (userId: string, reason: string, except?: string) =>
    Effect.flatMap(sessions.revokeAll(userId, reason, except === undefined ? undefined : { except }), (ids) =>
      revocations.revoke(ids, reason)
    )

  return Accounts.of({
    register: Effect.fn("Accounts.register")(function* ({ email: rawEmail, password, name }, meta) {
      yield* throttle.limitIp("register", meta)
      yield* checkPolicy(password, "password")
      const email = normalizeEmail(rawEmail)
      // Hash either way, so a taken address answers in the same time as a new one.
      const passwordHash = yield* hasher.hash(password)
      const user = yield* users.create({ email, name, passwordHash })
      if (Option.isNone(user)) {
        yield* notices.mail(
          email,
          "Someone tried to register with your address",
          "Someone tried to create an account with this email address, which already has one. " +
            "If it was you, sign in or reset your password. Otherwise you can ignore this message."
        )
      } else {
        const userId = user.value.id
        const token = yield* oneTime.issue(userId, "email_verification", TTL.emailVerification)
        yield* notices.mail(
          email,
          "Verify your email address",
          `Welcome, ${name}.\n\nConfirm your address with this token (valid 24 hours):\n\n${token}\n\n` +
            `${publicUrl}/verify-email?token=${token}\n`
        )
        yield* audit.record({ action: "user.registered", actorId: userId, target: `user:${userId}`, meta })
      }
      return new Accepted({ status: "pending_verification" })
    }),

    verifyEmail: Effect.fn("Accounts.verifyEmail")(function* (token, meta) {
      yield* throttle.limitIp("verify", meta)
      const userId = yield* oneTime.consume(token, "email_verification")
      yield* users.markEmailVerified(userId)
      yield* audit.record({ action: "email.verified", actorId: userId, meta })
    }),

    forgotPassword: Effect.fn("Accounts.forgotPassword")(function* (rawEmail, meta) {
      yield* throttle.limitIp("forgot", meta)
      const user = yield* users.byEmail(rawEmail)
      if (Option.isSome(user) && user.value.disabledAt === null) {
        const token = yield* oneTime.issue(user.value.id, "password_reset", TTL.passwordReset)
        yield* notices.mail(
          user.value.email,
          "Reset your password",
          `Use this token within 30 minutes to choose a new password:\n\n${token}\n\n` +
            `${publicUrl}/reset-password?token=${token}\n\nIf you did not ask for this, ignore this message.`
        )
        yield* audit.record({ action: "password.reset_requested", actorId: user.value.id, meta })
      }
      return new Accepted({ status: "accepted" })
    }),

    resetPassword: Effect.fn("Accounts.resetPassword")(function* ({ token, password }, meta) {
      yield* throttle.limitIp("reset", meta)
      yield* checkPolicy(password, "password")
      const userId = yield* oneTime.consume(token, "password_reset")
      yield* users.setPassword(userId, yield* hasher.hash(password))
      yield* oneTime.consumeAll(userId, "password_reset")
      yield* endSessions(userId, "password_reset")
      yield* notices.notify(
        userId,
        "Your password was changed",
        "Your password was reset and every session was signed out."
      )
      yield* audit.record({ action: "password.reset", actorId: userId, target: `user:${userId}`, meta })
    }),

    changePassword: Effect.fn("Accounts.changePassword")(function* (user, { currentPassword, newPassword }, meta) {
      yield* throttle.checkGuesses("password", user.userId)
      const account = yield* users.byId(user.userId)
      const stored = Option.flatMap(account, (a) => Option.fromNullable(a.passwordHash))
      if (!(yield* hasher.verify(stored, currentPassword))) {
        yield* throttle.wrongGuess("password", user.userId)
        yield* audit.record({ action: "password.change_failed", actorId: user.userId, meta })
        return yield* new InvalidInput({
          code: "wrong_password",
          field: "currentPassword",
          message: "The current password is not correct"
        })
      }
      yield* throttle.rightGuess("password", user.userId)
      yield* checkPolicy(newPassword, "newPassword")
      yield* users.setPassword(user.userId, yield* hasher.hash(newPassword))
      yield* endSessions(user.userId, "password_changed", user.sessionId)
      yield* notices.notify(
        user.userId,
        "Your password was changed",
        "Your password was changed; other sessions were signed out."
      )
      yield* audit.record({ action: "password.changed", actorId: user.userId, target: `user:${user.userId}`, meta })
    }),

    me: Effect.fn("Accounts.me")(function* (user) {
      return yield* users.profile(user.userId)
    })
  })
})

/** ADMIN_EMAIL + ADMIN_PASSWORD: a platform administrator, created at start when none exists. */
export const bootstrapAdmin = Effect.gen(function* () {
  const email = yield* Settings.adminEmail
  const password = yield* Settings.adminPassword
  if (Option.isNone(email) || Option.isNone(password)) return
  const users = yield* makeUsers
  const hasher = yield* PasswordHasher
  if (Option.isSome(yield* users.anyPlatformAdmin)) return
  yield* users.makePlatformAdmin(email.value, yield* hasher.hash(password.value))
  yield* Effect.logInfo("auth: platform administrator created from ADMIN_EMAIL")
})

export const AccountsLive = Layer.effect(Accounts, make).pipe(Layer.tap(() => Effect.orDie(bootstrapAdmin)))
