import { DateTime, Effect, Layer, Option, type Redacted } from "effect"
import { spannedGen } from "../../services/Span.ts"
import { MfaChallenge, SessionInfo, TokenPair } from "../../rpc/Auth.ts"
import { NotFound, Unauthorized } from "../../rpc/Errors.ts"
import { AccessTokens } from "../../services/AccessTokens.ts"
import { AuditLog, type RequestMeta } from "../../services/AuditLog.ts"
import { PasswordHasher } from "../../services/PasswordHasher.ts"
import { Revocations } from "../../services/Revocations.ts"
import { Sessions } from "../../services/Sessions.ts"
import { SignIn } from "../../services/SignIn.ts"
import { Settings } from "../Settings.ts"
import { emailNotVerified, invalidCredentials, invalidToken } from "./Credentials.ts"
import { makeOneTimeTokens, TTL } from "./OneTimeTokens.ts"
import { makeThrottle } from "./Throttle.ts"
import { makeTotpFactors } from "./TotpFactors.ts"
import { makeUsers, normalizeEmail } from "./Users.ts"

const signInFirst = new Unauthorized({ code: "unauthorized", message: "Sign in first: send a bearer access token" })
const wrongCode = new Unauthorized({ code: "invalid_credentials", message: "The code is not valid" })

export const make = Effect.gen(function* () {
  const hasher = yield* PasswordHasher
  const tokens = yield* AccessTokens
  const sessions = yield* Sessions
  const revocations = yield* Revocations
  const audit = yield* AuditLog
  const throttle = yield* makeThrottle
  const users = yield* makeUsers
  const oneTime = yield* makeOneTimeTokens
  const factors = yield* makeTotpFactors
  const requireVerifiedEmail = yield* Settings.requireVerifiedEmail

  const tokenPair = (userId: string, sessionId: string, refreshToken: string) =>
    Effect.map(
      tokens.issue({ userId, sessionId }),
      ({ token, expiresIn }) =>
        new TokenPair({ accessToken: token, refreshToken, tokenType: "Bearer", expiresIn, sessionId })
    )

  /** A new session and its tokens; refused when the account was disabled meanwhile. */
  const startSession = (userId: string, meta: RequestMeta) =>
    Effect.gen(function* () {
      const started = yield* sessions.start(userId, meta)
      if (Option.isNone(started)) return yield* invalidCredentials
      const pair = yield* tokenPair(userId, started.value.sessionId, started.value.refreshToken)
      yield* audit.record({ action: "login.succeeded", actorId: userId, target: `session:${pair.sessionId}`, meta })
      return pair
    })

  /** The enabled account `email` names, if `password` is its password; counts a failure otherwise. */
  const checkPassword = (email: string, password: Redacted.Redacted<string>, meta: RequestMeta) =>
    Effect.gen(function* () {
      yield* throttle.checkLock(email)
      const user = yield* users.byEmail(email)
      const stored = Option.flatMap(user, (u) => Option.fromNullable(u.passwordHash))
      const ok = yield* hasher.verify(stored, password)
      if (!ok || Option.isNone(user) || user.value.disabledAt !== null) {
        yield* throttle.recordFailure(email)
        yield* audit.record({
          action: "login.failed",
          actorId: Option.getOrNull(Option.map(user, (u) => u.id)),
          data: { email },
          meta
        })
        return yield* invalidCredentials
      }
      yield* throttle.clearFailures(email)
      return user.value
    })

  /** Ends sessions already ended in Postgres everywhere at once. */
  const endEverywhere = (sessionIds: ReadonlyArray<string>, reason: string) => revocations.revoke(sessionIds, reason)

  return SignIn.of({
    login: Effect.fn("SignIn.login")(function* ({ email: rawEmail, password }, meta) {
      yield* throttle.limitIp("login", meta)
      const email = normalizeEmail(rawEmail)
      const user = yield* throttle.oneAtATime(email)(checkPassword(email, password, meta))
      const userId = user.id
      if (requireVerifiedEmail && !user.emailVerified) {
        yield* audit.record({ action: "login.refused_unverified", actorId: userId, meta })
        return yield* emailNotVerified
      }
      if (Option.isSome(yield* factors.confirmedSecret(userId))) {
        const mfaToken = yield* oneTime.issue(userId, "mfa_login", TTL.mfaLogin)
        yield* audit.record({ action: "login.mfa_required", actorId: userId, meta })
        return new MfaChallenge({ mfaRequired: true, mfaToken })
      }
      return yield* startSession(userId, meta)
    }),

    loginMfa: Effect.fn("SignIn.loginMfa")(function* ({ mfaToken, code }, meta) {
      yield* throttle.limitIp("mfa", meta)
      const pending = yield* oneTime.holder(mfaToken, "mfa_login")
      if (Option.isNone(pending)) return yield* invalidToken
      const userId = pending.value
      yield* throttle.checkGuesses("mfa", userId)
      const secret = yield* factors.confirmedSecret(userId)
      const ok = Option.isSome(secret) && (yield* factors.verify(userId, secret.value, code))
      if (!ok) {
        yield* throttle.wrongGuess("mfa", userId)
        yield* audit.record({ action: "login.mfa_failed", actorId: userId, meta })
        return yield* wrongCode
      }
      yield* throttle.rightGuess("mfa", userId)
      yield* oneTime.consume(mfaToken, "mfa_login")
      return yield* startSession(userId, meta)
    }),

    refresh: Effect.fn("SignIn.refresh")(function* (refreshToken, meta) {
      yield* throttle.limitIp("refresh", meta)
      const rotation = yield* sessions.rotate(refreshToken, meta)
      switch (rotation._tag) {
        case "Rotated":
          return yield* tokenPair(rotation.userId, rotation.sessionId, rotation.refreshToken)
        case "Reused":
          if (rotation.ended) yield* endEverywhere([rotation.sessionId], "refresh_token_reuse")
          yield* audit.record({
            action: "session.refresh_token_reused",
            actorId: rotation.userId,
            target: `session:${rotation.sessionId}`,
            meta
          })
          return yield* invalidToken
        case "Refused":
          return yield* invalidToken
      }
    }),

    authenticate: spannedGen("SignIn.authenticate", function* (accessToken) {
      if (Option.isNone(accessToken) || accessToken.value === "") return yield* signInFirst
      const claims = yield* tokens.verify(accessToken.value).pipe(Effect.mapError(() => invalidToken))
      if (yield* revocations.isRevoked(claims.sessionId)) return yield* invalidToken
      return { userId: claims.userId, sessionId: claims.sessionId }
    }),

    logout: Effect.fn("SignIn.logout")(function* (user, meta) {
      if (yield* sessions.revoke(user.userId, user.sessionId, "logout")) {
        yield* endEverywhere([user.sessionId], "logout")
      }
      yield* audit.record({ action: "session.logout", actorId: user.userId, target: `session:${user.sessionId}`, meta })
    }),

    logoutAll: Effect.fn("SignIn.logoutAll")(function* (user, meta) {
      yield* endEverywhere(yield* sessions.revokeAll(user.userId, "logout_all"), "logout_all")
      yield* audit.record({ action: "session.logout_all", actorId: user.userId, meta })
    }),

    sessions: Effect.fn("SignIn.sessions")(function* (user) {
      const live = yield* sessions.list(user.userId)
      return live.map(
        (session) =>
          new SessionInfo({
            id: session.id,
            current: session.id === user.sessionId,
            createdAt: DateTime.unsafeFromDate(session.createdAt),
            lastUsedAt: DateTime.unsafeFromDate(session.lastUsedAt),
            expiresAt: DateTime.unsafeFromDate(session.expiresAt),
            ip: session.ip,
            userAgent: session.userAgent
          })
      )
    }),

    revokeSession: Effect.fn("SignIn.revokeSession")(function* (user, sessionId, meta) {
      if (!(yield* sessions.revoke(user.userId, sessionId, "revoked_by_user"))) {
        return yield* new NotFound({ message: "No such session" })
      }
      yield* endEverywhere([sessionId], "revoked_by_user")
      yield* audit.record({ action: "session.revoked", actorId: user.userId, target: `session:${sessionId}`, meta })
    })
  })
})

export const SignInLive = Layer.effect(SignIn, make)
