import { SqlClient } from "@effect/sql"
import { Duration, Effect, Layer, Option } from "effect"
import { Accepted, Me, MfaChallenge, SessionInfo } from "../../rpc/Auth.ts"
import { InvalidInput, NotFound, Unauthorized } from "../../rpc/Errors.ts"
import type { SignedIn } from "../../rpc/Security.ts"
import { Auth } from "../../services/Auth.ts"
import { PasswordHasher } from "../../services/PasswordHasher.ts"
import * as Secrets from "../Secrets.ts"
import { Settings } from "../Settings.ts"
import { makeMfa } from "./AuthMfa.ts"
import { invalidCredentials, invalidToken, makeAuthSupport, normalizeEmail, TTL, utc } from "./AuthSupport.ts"

export const make = Effect.gen(function* () {
  const support = yield* makeAuthSupport
  const {
    sql,
    hasher,
    tokens,
    revocations,
    kv,
    audit,
    idleTtl,
    publicUrl,
    limitIp,
    failuresKey,
    checkLock,
    recordFailure,
    checkGuesses,
    wrongGuess,
    rightGuess,
    findByEmail,
    findById,
    checkPolicy,
    issueOneTimeToken,
    consumeOneTimeToken,
    tokenPair,
    startSession,
    endSessions,
    endAllSessions,
    confirmedSecret,
    checkSecondFactor,
    mail,
    notify
  } = support

  return Auth.of({
    ...makeMfa(support),
    register: ({ email: rawEmail, password, name }, meta) =>
      Effect.gen(function* () {
        yield* limitIp("register", meta)
        yield* checkPolicy(password, "password")
        const email = normalizeEmail(rawEmail)
        // Hash either way, so a taken address answers in the same time as a new one.
        const passwordHash = yield* hasher.hash(password)
        const inserted = yield* sql<{ id: string }>`
          INSERT INTO users (email, name, password_hash) VALUES (${email}, ${name}, ${passwordHash})
          ON CONFLICT ((lower(email))) DO NOTHING RETURNING id`.pipe(Effect.orDie)
        const user = inserted[0]
        if (user === undefined) {
          yield* mail(
            email,
            "Someone tried to register with your address",
            "Someone tried to create an account with this email address, which already has one. " +
              "If it was you, sign in or reset your password. Otherwise you can ignore this message."
          )
        } else {
          const token = yield* issueOneTimeToken(user.id, "email_verification", TTL.emailVerification)
          yield* mail(
            email,
            "Verify your email address",
            `Welcome, ${name}.\n\nConfirm your address with this token (valid 24 hours):\n\n${token}\n\n` +
              `${publicUrl}/verify-email?token=${token}\n`
          )
          yield* audit.record({ action: "user.registered", actorId: user.id, target: `user:${user.id}`, meta })
        }
        return new Accepted({ status: "pending_verification" })
      }),

    login: ({ email: rawEmail, password }, meta) =>
      Effect.gen(function* () {
        yield* limitIp("login", meta)
        const email = normalizeEmail(rawEmail)
        yield* checkLock(email)
        const user = yield* findByEmail(email)
        const stored = Option.flatMap(user, (u) => Option.fromNullable(u.passwordHash))
        const ok = yield* hasher.verify(stored, password)
        if (!ok || Option.isNone(user) || user.value.disabledAt !== null) {
          yield* recordFailure(email)
          yield* audit.record({
            action: "login.failed",
            actorId: Option.getOrNull(Option.map(user, (u) => u.id)),
            data: { email },
            meta
          })
          return yield* invalidCredentials
        }
        yield* kv.delete(failuresKey(email)).pipe(Effect.ignore)
        const userId = user.value.id
        if (Option.isSome(yield* confirmedSecret(userId))) {
          const mfaToken = yield* issueOneTimeToken(userId, "mfa_login", TTL.mfaLogin)
          yield* audit.record({ action: "login.mfa_required", actorId: userId, meta })
          return new MfaChallenge({ mfaRequired: true, mfaToken })
        }
        const pair = yield* startSession(userId, meta)
        yield* audit.record({ action: "login.succeeded", actorId: userId, target: `session:${pair.sessionId}`, meta })
        return pair
      }),

    loginMfa: ({ mfaToken, code }, meta) =>
      Effect.gen(function* () {
        yield* limitIp("mfa", meta)
        const [pending] = yield* sql<{ userId: string }>`
          SELECT user_id FROM one_time_tokens
          WHERE token_hash = ${Secrets.sha256(mfaToken)} AND purpose = 'mfa_login' AND used_at IS NULL AND expires_at > now()`.pipe(
          Effect.orDie
        )
        if (pending === undefined) return yield* invalidToken
        const userId = pending.userId
        yield* checkGuesses("mfa", userId)
        const secret = yield* confirmedSecret(userId)
        const ok = Option.isSome(secret) && (yield* checkSecondFactor(userId, secret.value, code))
        if (!ok) {
          yield* wrongGuess("mfa", userId)
          yield* audit.record({ action: "login.mfa_failed", actorId: userId, meta })
          return yield* new Unauthorized({ code: "invalid_credentials", message: "The code is not valid" })
        }
        yield* rightGuess("mfa", userId)
        yield* consumeOneTimeToken(mfaToken, "mfa_login")
        const pair = yield* startSession(userId, meta)
        yield* audit.record({ action: "login.succeeded", actorId: userId, target: `session:${pair.sessionId}`, meta })
        return pair
      }),

    refresh: (refreshToken, meta) =>
      Effect.gen(function* () {
        yield* limitIp("refresh", meta)
        const hash = Secrets.sha256(refreshToken)
        const outcome = yield* Effect.gen(function* () {
          const rotated = yield* sql<{ sessionId: string }>`
            UPDATE refresh_tokens SET rotated_at = now()
            WHERE token_hash = ${hash} AND rotated_at IS NULL RETURNING session_id`
          if (rotated[0] === undefined) {
            // Unknown, or already rotated: a replay. RFC 9700 §4.14.2: end the whole family.
            const [prior] = yield* sql<{ sessionId: string; userId: string }>`
              UPDATE sessions SET revoked_at = coalesce(revoked_at, now()),
                                  revoked_reason = coalesce(revoked_reason, 'refresh_token_reuse')
              WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = ${hash})
              RETURNING id AS session_id, user_id`
            return prior === undefined ? ({ _tag: "Unknown" } as const) : ({ _tag: "Reused", ...prior } as const)
          }
          const sessionId = rotated[0].sessionId
          const [session] = yield* sql<{ userId: string }>`
            UPDATE sessions SET last_used_at = now(), ip = ${meta.ip}, user_agent = ${meta.userAgent},
                   idle_expires_at = least(now() + ${`${Duration.toSeconds(idleTtl)} seconds`}::interval, absolute_expires_at)
            WHERE id = ${sessionId} AND revoked_at IS NULL AND idle_expires_at > now() AND absolute_expires_at > now()
            RETURNING user_id`
          if (session === undefined) return { _tag: "Expired" } as const
          const next = Secrets.newToken()
          yield* sql`INSERT INTO refresh_tokens (token_hash, session_id) VALUES (${Secrets.sha256(next)}, ${sessionId})`
          return { _tag: "Rotated", sessionId, userId: session.userId, next } as const
        }).pipe(sql.withTransaction, Effect.orDie)

        switch (outcome._tag) {
          case "Rotated":
            return yield* tokenPair(outcome.userId, outcome.sessionId, outcome.next)
          case "Reused":
            yield* endSessions([outcome.sessionId], "refresh_token_reuse")
            yield* audit.record({
              action: "session.refresh_token_reused",
              actorId: outcome.userId,
              target: `session:${outcome.sessionId}`,
              meta
            })
            return yield* invalidToken
          default:
            return yield* invalidToken
        }
      }),

    forgotPassword: (rawEmail, meta) =>
      Effect.gen(function* () {
        yield* limitIp("forgot", meta)
        const user = yield* findByEmail(normalizeEmail(rawEmail))
        if (Option.isSome(user) && user.value.disabledAt === null) {
          const token = yield* issueOneTimeToken(user.value.id, "password_reset", TTL.passwordReset)
          yield* mail(
            user.value.email,
            "Reset your password",
            `Use this token within 30 minutes to choose a new password:\n\n${token}\n\n` +
              `${publicUrl}/reset-password?token=${token}\n\nIf you did not ask for this, ignore this message.`
          )
          yield* audit.record({ action: "password.reset_requested", actorId: user.value.id, meta })
        }
        return new Accepted({ status: "accepted" })
      }),

    resetPassword: ({ token, password }, meta) =>
      Effect.gen(function* () {
        yield* limitIp("reset", meta)
        yield* checkPolicy(password, "password")
        const userId = yield* consumeOneTimeToken(token, "password_reset")
        const passwordHash = yield* hasher.hash(password)
        yield* sql`UPDATE users SET password_hash = ${passwordHash}, updated_at = now() WHERE id = ${userId}`.pipe(
          Effect.orDie
        )
        yield* sql`UPDATE one_time_tokens SET used_at = now() WHERE user_id = ${userId} AND purpose = 'password_reset' AND used_at IS NULL`.pipe(
          Effect.orDie
        )
        yield* endAllSessions(userId, "password_reset")
        yield* notify(userId, "Your password was changed", "Your password was reset and every session was signed out.")
        yield* audit.record({ action: "password.reset", actorId: userId, target: `user:${userId}`, meta })
      }),

    verifyEmail: (token, meta) =>
      Effect.gen(function* () {
        yield* limitIp("verify", meta)
        const userId = yield* consumeOneTimeToken(token, "email_verification")
        yield* sql`UPDATE users SET email_verified_at = coalesce(email_verified_at, now()) WHERE id = ${userId}`.pipe(
          Effect.orDie
        )
        yield* audit.record({ action: "email.verified", actorId: userId, meta })
      }),

    authenticate: (accessToken) =>
      Effect.gen(function* () {
        if (Option.isNone(accessToken) || accessToken.value === "") {
          return yield* new Unauthorized({ code: "unauthorized", message: "Sign in first: send a bearer access token" })
        }
        const claims = yield* tokens.verify(accessToken.value).pipe(Effect.mapError(() => invalidToken))
        if (yield* revocations.isRevoked(claims.sessionId)) return yield* invalidToken
        return { userId: claims.userId, sessionId: claims.sessionId }
      }),

    logout: (user, meta) =>
      Effect.gen(function* () {
        yield* sql`UPDATE sessions SET revoked_at = now(), revoked_reason = 'logout'
                   WHERE id = ${user.sessionId} AND revoked_at IS NULL`.pipe(Effect.orDie)
        yield* endSessions([user.sessionId], "logout")
        yield* audit.record({
          action: "session.logout",
          actorId: user.userId,
          target: `session:${user.sessionId}`,
          meta
        })
      }),

    logoutAll: (user, meta) =>
      endAllSessions(user.userId, "logout_all").pipe(
        Effect.zipRight(audit.record({ action: "session.logout_all", actorId: user.userId, meta }))
      ),

    sessions: (user: SignedIn) =>
      sql<{
        id: string
        createdAt: Date
        lastUsedAt: Date
        expiresAt: Date
        ip: string | null
        userAgent: string | null
      }>`
        SELECT id, created_at, last_used_at, least(idle_expires_at, absolute_expires_at) AS expires_at, ip, user_agent
        FROM sessions
        WHERE user_id = ${user.userId} AND revoked_at IS NULL AND idle_expires_at > now() AND absolute_expires_at > now()
        ORDER BY last_used_at DESC`.pipe(
        Effect.orDie,
        Effect.map((rows) =>
          rows.map(
            (row) =>
              new SessionInfo({
                id: row.id,
                current: row.id === user.sessionId,
                createdAt: utc(row.createdAt),
                lastUsedAt: utc(row.lastUsedAt),
                expiresAt: utc(row.expiresAt),
                ip: row.ip,
                userAgent: row.userAgent
              })
          )
        )
      ),

    revokeSession: (user, sessionId, meta) =>
      Effect.gen(function* () {
        const rows = yield* sql`
          UPDATE sessions SET revoked_at = now(), revoked_reason = 'revoked_by_user'
          WHERE id = ${sessionId} AND user_id = ${user.userId} AND revoked_at IS NULL RETURNING id`.pipe(Effect.orDie)
        if (rows.length === 0) return yield* new NotFound({ message: "No such session" })
        yield* endSessions([sessionId], "revoked_by_user")
        yield* audit.record({ action: "session.revoked", actorId: user.userId, target: `session:${sessionId}`, meta })
      }),

    changePassword: (user, { currentPassword, newPassword }, meta) =>
      Effect.gen(function* () {
        yield* checkGuesses("password", user.userId)
        const account = yield* findById(user.userId)
        const stored = Option.flatMap(account, (a) => Option.fromNullable(a.passwordHash))
        if (!(yield* hasher.verify(stored, currentPassword))) {
          yield* wrongGuess("password", user.userId)
          yield* audit.record({ action: "password.change_failed", actorId: user.userId, meta })
          return yield* new InvalidInput({
            code: "wrong_password",
            field: "currentPassword",
            message: "The current password is not correct"
          })
        }
        yield* rightGuess("password", user.userId)
        yield* checkPolicy(newPassword, "newPassword")
        const passwordHash = yield* hasher.hash(newPassword)
        yield* sql`UPDATE users SET password_hash = ${passwordHash}, updated_at = now() WHERE id = ${user.userId}`.pipe(
          Effect.orDie
        )
        yield* endAllSessions(user.userId, "password_changed", user.sessionId)
        yield* notify(
          user.userId,
          "Your password was changed",
          "Your password was changed; other sessions were signed out."
        )
        yield* audit.record({ action: "password.changed", actorId: user.userId, target: `user:${user.userId}`, meta })
      }),

    me: (user) =>
      sql<{ id: string; email: string; name: string; emailVerified: boolean; mfaEnabled: boolean; createdAt: Date }>`
        SELECT u.id, u.email, u.name, u.email_verified_at IS NOT NULL AS email_verified,
               m.confirmed_at IS NOT NULL AS mfa_enabled, u.created_at
        FROM users u LEFT JOIN mfa_totp m ON m.user_id = u.id
        WHERE u.id = ${user.userId}`.pipe(
        Effect.orDie,
        Effect.flatMap((rows) =>
          rows[0] === undefined ? Effect.die("signed-in user is gone") : Effect.succeed(rows[0])
        ),
        Effect.map((row) => new Me({ ...row, createdAt: utc(row.createdAt) }))
      )
  })
})

/** ADMIN_EMAIL + ADMIN_PASSWORD: a platform administrator, created at start when none exists. */
export const bootstrapAdmin = Effect.gen(function* () {
  const email = yield* Settings.adminEmail
  const password = yield* Settings.adminPassword
  if (Option.isNone(email) || Option.isNone(password)) return
  const sql = yield* SqlClient.SqlClient
  const hasher = yield* PasswordHasher
  const [existing] = yield* sql`SELECT id FROM users WHERE is_platform_admin LIMIT 1`
  if (existing !== undefined) return
  const passwordHash = yield* hasher.hash(password.value)
  yield* sql`
    INSERT INTO users (email, name, password_hash, is_platform_admin, email_verified_at)
    VALUES (${normalizeEmail(email.value)}, 'Administrator', ${passwordHash}, true, now())
    ON CONFLICT ((lower(email))) DO UPDATE SET is_platform_admin = true`
  yield* Effect.logInfo("auth: platform administrator created from ADMIN_EMAIL")
})

export const AuthLive = Layer.effect(Auth, make).pipe(Layer.tap(() => Effect.orDie(bootstrapAdmin)))
