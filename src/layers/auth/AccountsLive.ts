import { Effect, Layer, Option, Queue } from "effect"
import { spannedGen } from "../../services/Span.ts"
import { Accepted } from "../../rpc/Auth.ts"
import { InvalidInput } from "../../rpc/Errors.ts"
import { Accounts } from "../../services/Accounts.ts"
import { AuditLog, type RequestMeta } from "../../services/AuditLog.ts"
import { PasswordHasher } from "../../services/PasswordHasher.ts"
import { Revocations } from "../../services/Revocations.ts"
import { Sessions } from "../../services/Sessions.ts"
import { Settings } from "../Settings.ts"
import { checkPolicy, invalidToken } from "./Credentials.ts"
import { makeNotices } from "./Notices.ts"
import { makeOneTimeTokens, TTL } from "./OneTimeTokens.ts"
import { ProfileCache } from "./ProfileCache.ts"
import { makeThrottle } from "./Throttle.ts"
import { makeUsers, normalizeEmail } from "./Users.ts"

/**
 * Work an answer must not wait for, because its amount depends on whether an address has an
 * account (S51): the answer only queues it, the same way for a known and an unknown address.
 */
type FollowUp =
  | { readonly _tag: "AddressTaken"; readonly email: string }
  | {
      readonly _tag: "Registered"
      readonly userId: string
      readonly email: string
      readonly name: string
      readonly meta: RequestMeta
    }
  | { readonly _tag: "ResetRequested"; readonly email: string; readonly meta: RequestMeta }

/** Follow-ups waiting at most, and handled at once. */
const FOLLOW_UPS = 10_000
const WORKERS = 4

export const make = Effect.gen(function* () {
  const hasher = yield* PasswordHasher
  const audit = yield* AuditLog
  const sessions = yield* Sessions
  const revocations = yield* Revocations
  const publicUrl = yield* Settings.publicUrl
  const throttle = yield* makeThrottle
  const users = yield* makeUsers
  const profiles = yield* ProfileCache
  const oneTime = yield* makeOneTimeTokens
  const notices = yield* makeNotices(users)

  /** What follows a registration or a forgotten password: mails and audit entries, after the answer. */
  const followUp = (work: FollowUp) =>
    Effect.gen(function* () {
      switch (work._tag) {
        case "AddressTaken":
          return yield* notices.mail(
            work.email,
            "Someone tried to register with your address",
            "Someone tried to create an account with this email address, which already has one. " +
              "If it was you, sign in or reset your password. Otherwise you can ignore this message."
          )
        case "Registered": {
          const token = yield* oneTime.issue(work.userId, "email_verification", TTL.emailVerification)
          yield* notices.mail(
            work.email,
            "Verify your email address",
            `Welcome, ${work.name}.\n\nConfirm your address with this token (valid 24 hours):\n\n${token}\n\n` +
              `${publicUrl}/verify-email?token=${token}\n`
          )
          return yield* audit.record({
            action: "user.registered",
            actorId: work.userId,
            target: `user:${work.userId}`,
            meta: work.meta
          })
        }
        case "ResetRequested": {
          const user = yield* users.byEmail(work.email)
          if (Option.isNone(user) || user.value.disabledAt !== null) return
          const token = yield* oneTime.issue(user.value.id, "password_reset", TTL.passwordReset)
          yield* notices.mail(
            user.value.email,
            "Reset your password",
            `Use this token within 30 minutes to choose a new password:\n\n${token}\n\n` +
              `${publicUrl}/reset-password?token=${token}\n\nIf you did not ask for this, ignore this message.`
          )
          return yield* audit.record({ action: "password.reset_requested", actorId: user.value.id, meta: work.meta })
        }
      }
    })

  // A dropping queue: past FOLLOW_UPS waiting, more are dropped (logged) instead of holding memory;
  // either way the answer is the same and as fast.
  const followUps = yield* Queue.dropping<FollowUp>(FOLLOW_UPS)
  const enqueue = (work: FollowUp) =>
    Effect.flatMap(Queue.offer(followUps, work), (queued) =>
      queued ? Effect.void : Effect.logWarning("auth: too many mails waiting; one was dropped")
    )
  const worker = Queue.take(followUps).pipe(
    Effect.flatMap((work) =>
      followUp(work).pipe(
        Effect.catchAllCause((cause) => Effect.logError(`auth: ${work._tag} follow-up failed`, cause))
      )
    ),
    Effect.forever
  )
  yield* Effect.forkScoped(
    Effect.all(
      Array.from({ length: WORKERS }, () => worker),
      { concurrency: "unbounded" }
    )
  )
  // At shutdown (this runs before the workers are stopped) the mails already promised get a few seconds.
  yield* Effect.addFinalizer(() =>
    Effect.gen(function* () {
      while ((yield* Queue.size(followUps)) > 0) yield* Effect.sleep("50 millis")
    }).pipe(Effect.timeout("5 seconds"), Effect.ignore)
  )

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
      // Hash and insert either way, and leave the rest to the follow-up worker, so a taken address
      // answers in the same time as a new one.
      const passwordHash = yield* hasher.hash(password)
      const user = yield* users.create({ email, name, passwordHash })
      yield* enqueue(
        Option.match(user, {
          onNone: () => ({ _tag: "AddressTaken", email }) as const,
          onSome: ({ id }) => ({ _tag: "Registered", userId: id, email, name, meta }) as const
        })
      )
      return new Accepted({ status: "pending_verification" })
    }),

    verifyEmail: Effect.fn("Accounts.verifyEmail")(function* (token, meta) {
      yield* throttle.limitIp("verify", meta)
      const userId = yield* oneTime.consume(token, "email_verification")
      yield* profiles.changeWith(userId, users.markEmailVerified(userId))
      yield* audit.record({ action: "email.verified", actorId: userId, meta })
    }),

    forgotPassword: Effect.fn("Accounts.forgotPassword")(function* (email, meta) {
      yield* throttle.limitIp("forgot", meta)
      // Whether the address has an account is looked up after the answer, by the follow-up worker.
      yield* enqueue({ _tag: "ResetRequested", email, meta })
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

    me: spannedGen("Accounts.me", function* (user) {
      // An account deleted in the database after the token was issued: the token is dead.
      const profile = yield* profiles.profile(user.userId)
      if (Option.isNone(profile)) return yield* invalidToken
      return profile.value
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

export const AccountsLive = Layer.scoped(Accounts, make).pipe(Layer.tap(() => Effect.orDie(bootstrapAdmin)))
