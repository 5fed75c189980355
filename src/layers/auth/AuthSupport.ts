import { SqlClient } from "@effect/sql"
import { Clock, DateTime, Duration, Effect, Option, Redacted } from "effect"
import { isCommonPassword } from "../../domain/PasswordPolicy.ts"
import { TokenPair } from "../../rpc/Auth.ts"
import { InvalidInput, TooManyRequests, Unauthorized } from "../../rpc/Errors.ts"
import { AccessTokens } from "../../services/AccessTokens.ts"
import { AuditLog, type RequestMeta } from "../../services/AuditLog.ts"
import { KeyValueStore } from "../../services/KeyValueStore.ts"
import { Mailer } from "../../services/Mailer.ts"
import { PasswordHasher } from "../../services/PasswordHasher.ts"
import { type RateLimit, RateLimiter } from "../../services/RateLimiter.ts"
import { Revocations } from "../../services/Revocations.ts"
import * as Secrets from "../Secrets.ts"
import { Settings } from "../Settings.ts"
import { Keys } from "./Keys.ts"
import * as Totp from "./Totp.ts"

const LOCK_AFTER_FAILURES = 5
const MAX_LOCK_MINUTES = 15
/** Wrong second factors or passwords per account before it must wait (only failures count). */
const GUESSES = { limit: 5, window: Duration.minutes(15) }
/** How long each kind of one-time token lives. */
export const TTL = {
  passwordReset: Duration.minutes(30),
  emailVerification: Duration.hours(24),
  mfaLogin: Duration.minutes(5)
}

type Purpose = "password_reset" | "email_verification" | "mfa_login"

interface UserRow {
  readonly id: string
  readonly email: string
  readonly name: string
  readonly passwordHash: string | null
  readonly disabledAt: Date | null
  readonly emailVerifiedAt: Date | null
  readonly createdAt: Date
}

export const invalidCredentials = new Unauthorized({
  code: "invalid_credentials",
  message: "The email or password is not correct"
})
export const invalidToken = new Unauthorized({
  code: "invalid_token",
  message: "The token is not valid or has expired"
})
const seconds = (d: Duration.Duration) => Math.max(1, Math.ceil(Duration.toSeconds(d)))
const tooMany = (retryAfter: Duration.Duration) =>
  new TooManyRequests({ message: "Too many attempts; try again later", retryAfter: seconds(retryAfter) })
export const normalizeEmail = (email: string) => email.trim().toLowerCase()
export const utc = (date: Date) => DateTime.unsafeFromDate(date)

/** The building blocks every Auth operation shares: stores, limits, tokens, sessions, mail. */
export const makeAuthSupport = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const hasher = yield* PasswordHasher
  const tokens = yield* AccessTokens
  const revocations = yield* Revocations
  const kv = yield* KeyValueStore
  const limiter = yield* RateLimiter
  const mailer = yield* Mailer
  const audit = yield* AuditLog
  const keys = yield* Keys
  const idleTtl = yield* Settings.refreshIdleTtl
  const absoluteTtl = yield* Settings.refreshAbsoluteTtl
  const ipLimit: RateLimit = { limit: yield* Settings.authIpRateLimit, window: "1 minute" }
  const publicUrl = yield* Settings.publicUrl

  // Rate limits fail open (logged): an unreachable limiter must not lock everyone out.
  const limit = (key: string, rate: RateLimit) =>
    limiter.consume(key, rate).pipe(
      Effect.catchAll((error) =>
        Effect.as(Effect.logWarning("auth: rate limiter unavailable", error), {
          allowed: true,
          retryAfter: Duration.zero
        })
      ),
      Effect.flatMap((decision) => (decision.allowed ? Effect.void : Effect.fail(tooMany(decision.retryAfter))))
    )
  const limitIp = (action: string, meta: RequestMeta) => limit(`ip:${action}:${meta.ip}`, ipLimit)

  // Per-account throttling: after 5 consecutive failures, locked for 1, 2, 4 … 15 minutes, whatever the IP.
  const lockKey = (email: string) => `login-lock:${email}`
  const failuresKey = (email: string) => `login-failures:${email}`
  const checkLock = (email: string) =>
    Effect.gen(function* () {
      const until = yield* kv.get(lockKey(email)).pipe(Effect.orElseSucceed(() => Option.none<string>()))
      const now = yield* Clock.currentTimeMillis
      if (Option.isSome(until) && Number(until.value) > now) {
        return yield* tooMany(Duration.millis(Number(until.value) - now))
      }
    })
  const recordFailure = (email: string) =>
    Effect.gen(function* () {
      const failures = yield* kv.increment(failuresKey(email), Duration.days(1))
      if (failures < LOCK_AFTER_FAILURES) return
      const minutes = Math.min(2 ** (failures - LOCK_AFTER_FAILURES), MAX_LOCK_MINUTES)
      const now = yield* Clock.currentTimeMillis
      yield* kv.set(lockKey(email), String(now + minutes * 60_000), Duration.minutes(minutes))
    }).pipe(Effect.catchAll((error) => Effect.logWarning("auth: cannot record a login failure", error)))

  // Code and password guessing on one account: only wrong answers count, and a right one clears them.
  const guessesKey = (kind: string, userId: string) => `guesses:${kind}:${userId}`
  const checkGuesses = (kind: string, userId: string) =>
    kv.get(guessesKey(kind, userId)).pipe(
      Effect.orElseSucceed(() => Option.none<string>()),
      Effect.flatMap((count) =>
        Option.isSome(count) && Number(count.value) >= GUESSES.limit
          ? Effect.fail(tooMany(GUESSES.window))
          : Effect.void
      )
    )
  const wrongGuess = (kind: string, userId: string) =>
    kv.increment(guessesKey(kind, userId), GUESSES.window).pipe(Effect.ignore)
  const rightGuess = (kind: string, userId: string) => kv.delete(guessesKey(kind, userId)).pipe(Effect.ignore)

  const findByEmail = (email: string) =>
    sql<UserRow>`
      SELECT id, email, name, password_hash, disabled_at, email_verified_at, created_at
      FROM users WHERE lower(email) = ${email}`.pipe(
      Effect.map((rows) => Option.fromNullable(rows[0])),
      Effect.orDie
    )
  const findById = (id: string) =>
    sql<UserRow>`
      SELECT id, email, name, password_hash, disabled_at, email_verified_at, created_at
      FROM users WHERE id = ${id}`.pipe(
      Effect.map((rows) => Option.fromNullable(rows[0])),
      Effect.orDie
    )

  const checkPolicy = (password: Redacted.Redacted<string>, field: string) =>
    isCommonPassword(Redacted.value(password))
      ? Effect.fail(
          new InvalidInput({ code: "weak_password", field, message: "This password is too common; choose another" })
        )
      : Effect.void

  const issueOneTimeToken = (userId: string, purpose: Purpose, ttl: Duration.Duration) =>
    Effect.gen(function* () {
      const token = Secrets.newToken()
      const expiresAt = new Date((yield* Clock.currentTimeMillis) + Duration.toMillis(ttl))
      yield* sql`
        INSERT INTO one_time_tokens (token_hash, purpose, user_id, expires_at)
        VALUES (${Secrets.sha256(token)}, ${purpose}, ${userId}, ${expiresAt})`
      return token
    }).pipe(Effect.orDie)

  /** Single use: of concurrent callers, one gets the user id. */
  const consumeOneTimeToken = (token: string, purpose: Purpose) =>
    sql<{ userId: string }>`
      UPDATE one_time_tokens SET used_at = now()
      WHERE token_hash = ${Secrets.sha256(token)} AND purpose = ${purpose} AND used_at IS NULL AND expires_at > now()
      RETURNING user_id`.pipe(
      Effect.orDie,
      Effect.flatMap((rows) => (rows[0] === undefined ? Effect.fail(invalidToken) : Effect.succeed(rows[0].userId)))
    )

  const tokenPair = (userId: string, sessionId: string, refreshToken: string) =>
    Effect.map(
      tokens.issue({ userId, sessionId }),
      ({ token, expiresIn }) =>
        new TokenPair({ accessToken: token, refreshToken, tokenType: "Bearer", expiresIn, sessionId })
    )

  const startSession = (userId: string, meta: RequestMeta) =>
    Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const refreshToken = Secrets.newToken()
      // Only while the user is enabled: a disable that commits between the password check and
      // here must not leave a session behind.
      const [session] = yield* sql<{ id: string }>`
        INSERT INTO sessions (user_id, idle_expires_at, absolute_expires_at, ip, user_agent)
        SELECT id, ${new Date(now + Duration.toMillis(idleTtl))}, ${new Date(now + Duration.toMillis(absoluteTtl))},
               ${meta.ip}, ${meta.userAgent}
        FROM users WHERE id = ${userId} AND disabled_at IS NULL
        RETURNING id`
      if (session === undefined) return yield* Effect.fail(invalidCredentials)
      yield* sql`INSERT INTO refresh_tokens (token_hash, session_id) VALUES (${Secrets.sha256(refreshToken)}, ${session.id})`
      return yield* tokenPair(userId, session.id, refreshToken)
    }).pipe(sql.withTransaction, Effect.catchTag("SqlError", Effect.die))

  const endSessions = (sessionIds: ReadonlyArray<string>, reason: string) => revocations.revoke(sessionIds, reason)

  const endAllSessions = (userId: string, reason: string, except?: string) =>
    sql<{ id: string }>`
      UPDATE sessions SET revoked_at = now(), revoked_reason = ${reason}
      WHERE user_id = ${userId} AND revoked_at IS NULL AND id <> ${except ?? "00000000-0000-0000-0000-000000000000"}
      RETURNING id`.pipe(
      Effect.orDie,
      Effect.flatMap((rows) =>
        endSessions(
          rows.map((row) => row.id),
          reason
        )
      )
    )

  const confirmedSecret = (userId: string) =>
    sql<{ secretEncrypted: string }>`
      SELECT secret_encrypted FROM mfa_totp WHERE user_id = ${userId} AND confirmed_at IS NOT NULL`.pipe(
      Effect.orDie,
      Effect.map((rows) =>
        Option.map(Option.fromNullable(rows[0]), (row) => Totp.open(keys.mfaKey, row.secretEncrypted))
      )
    )

  /** A TOTP code (each time step once) or an unused recovery code. */
  const checkSecondFactor = (userId: string, secret: string, code: string) =>
    Effect.gen(function* () {
      const step = Totp.matchingStep(secret, code, yield* Clock.currentTimeMillis)
      if (step !== undefined) {
        const used = yield* sql`
          UPDATE mfa_totp SET last_used_step = ${step}
          WHERE user_id = ${userId} AND last_used_step < ${step} RETURNING user_id`
        return used.length === 1
      }
      const recovered = yield* sql`
        UPDATE mfa_recovery_codes SET used_at = now()
        WHERE user_id = ${userId} AND code_hash = ${Secrets.sha256(Totp.normalizeRecoveryCode(code))} AND used_at IS NULL
        RETURNING user_id`
      return recovered.length === 1
    }).pipe(Effect.orDie)

  const mail = (to: string, subject: string, text: string) => mailer.send({ to, subject, text })
  const notify = (userId: string, subject: string, text: string) =>
    findById(userId).pipe(
      Effect.flatMap(Option.match({ onNone: () => Effect.void, onSome: (u) => mail(u.email, subject, text) }))
    )

  return {
    sql,
    hasher,
    tokens,
    revocations,
    kv,
    limiter,
    mailer,
    audit,
    keys,
    idleTtl,
    absoluteTtl,
    ipLimit,
    publicUrl,
    limit,
    limitIp,
    lockKey,
    failuresKey,
    checkLock,
    recordFailure,
    guessesKey,
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
  }
})

export type AuthSupport = Effect.Effect.Success<typeof makeAuthSupport>
