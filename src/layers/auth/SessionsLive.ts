import { SqlClient, SqlSchema } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Clock, Duration, Effect, Layer, Option, type ParseResult, Schema } from "effect"
import { spanned, spannedGen } from "../../services/Span.ts"
import { batched } from "../Coalesce.ts"
import { event } from "../../services/Events.ts"
import { Outbox } from "../../services/Outbox.ts"
import { type RevokedSession, Rotation, SessionStoreError, Sessions } from "../../services/Sessions.ts"
import * as Secrets from "../Secrets.ts"
import { Settings } from "../Settings.ts"

const Id = Schema.Struct({ id: Schema.String })
const Ids = Schema.Array(Schema.String)
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const Revoked = Schema.Struct({ id: Schema.String, revokedReason: Schema.NullOr(Schema.String) })
const toRevoked = (row: typeof Revoked.Type): RevokedSession => ({ id: row.id, reason: row.revokedReason ?? "revoked" })

const SessionRow = Schema.Struct({
  id: Schema.String,
  createdAt: Schema.DateFromSelf,
  lastUsedAt: Schema.DateFromSelf,
  expiresAt: Schema.DateFromSelf,
  ip: Schema.NullOr(Schema.String),
  userAgent: Schema.NullOr(Schema.String)
})

/** Writes: a failure is a defect (nothing a caller could do about it). */
const orDie = <A, R>(effect: Effect.Effect<A, SqlError | ParseResult.ParseError, R>) => Effect.orDie(effect)

/** Reads: Postgres being down means something to the caller; a row that does not decode is a bug. */
const readFailure =
  (operation: string) =>
  <A, R>(effect: Effect.Effect<A, SqlError | ParseResult.ParseError, R>) =>
    effect.pipe(
      Effect.catchTag("ParseError", Effect.die),
      Effect.mapError((cause) => new SessionStoreError({ operation, cause }))
    )

export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const outbox = yield* Outbox
  const idleTtl = yield* Settings.refreshIdleTtl
  const absoluteTtl = yield* Settings.refreshAbsoluteTtl
  const idleInterval = `${Duration.toSeconds(idleTtl)} seconds`

  /**
   * Runs `effect` in a transaction (a savepoint inside the caller's) and wakes the relay after it
   * when it recorded events.
   */
  const transaction = <A, E, R>(effect: Effect.Effect<A, E, R>, recorded: (a: A) => boolean) =>
    effect.pipe(
      sql.withTransaction,
      Effect.catchTag("SqlError", Effect.die),
      Effect.tap((a) => (recorded(a) ? outbox.wake : Effect.void))
    )

  const recordRevoked = (userId: string, sessionIds: ReadonlyArray<string>, reason: string) =>
    sessionIds.length === 0
      ? Effect.void
      : outbox.recordUnscoped([event("sessions.revoked", { userId, sessionIds: [...sessionIds], reason })])

  const insertSession = SqlSchema.findOne({
    Request: Schema.Struct({
      userId: Schema.String,
      idleExpiresAt: Schema.DateFromSelf,
      absoluteExpiresAt: Schema.DateFromSelf,
      ip: Schema.String,
      userAgent: Schema.NullOr(Schema.String)
    }),
    Result: Id,
    execute: (r) => sql`
      INSERT INTO sessions (user_id, idle_expires_at, absolute_expires_at, ip, user_agent)
      SELECT id, ${r.idleExpiresAt}, ${r.absoluteExpiresAt}, ${r.ip}, ${r.userAgent}
      FROM users WHERE id = ${r.userId} AND disabled_at IS NULL
      RETURNING id`
  })

  const insertRefreshToken = (sessionId: string, refreshToken: string) =>
    sql`INSERT INTO refresh_tokens (token_hash, session_id) VALUES (${Secrets.sha256(refreshToken)}, ${sessionId})`

  const rotateToken = SqlSchema.findOne({
    Request: Schema.String,
    Result: Schema.Struct({ sessionId: Schema.String }),
    execute: (refreshToken) => sql`
      UPDATE refresh_tokens SET rotated_at = now()
      WHERE token_hash = ${Secrets.sha256(refreshToken)} AND rotated_at IS NULL RETURNING session_id`
  })

  /** The session a (rotated) token belongs to, locked, so concurrent replays end it once. */
  const familyOf = SqlSchema.findOne({
    Request: Schema.String,
    Result: Schema.Struct({ id: Schema.String, userId: Schema.String, live: Schema.Boolean }),
    execute: (refreshToken) => sql`
      SELECT s.id, s.user_id, s.revoked_at IS NULL AS live
      FROM sessions s JOIN refresh_tokens t ON t.session_id = s.id
      WHERE t.token_hash = ${Secrets.sha256(refreshToken)}
      FOR UPDATE OF s`
  })

  const touch = SqlSchema.findOne({
    Request: Schema.Struct({ sessionId: Schema.String, ip: Schema.String, userAgent: Schema.NullOr(Schema.String) }),
    Result: Schema.Struct({ userId: Schema.String }),
    execute: (r) => sql`
      UPDATE sessions SET last_used_at = now(), ip = ${r.ip}, user_agent = ${r.userAgent},
             idle_expires_at = least(now() + ${idleInterval}::interval, absolute_expires_at)
      WHERE id = ${r.sessionId} AND revoked_at IS NULL AND idle_expires_at > now() AND absolute_expires_at > now()
      RETURNING user_id`
  })

  const revokeIds = SqlSchema.findAll({
    Request: Schema.Struct({ ids: Ids, reason: Schema.String }),
    Result: Id,
    execute: (r) => sql`
      UPDATE sessions SET revoked_at = now(), revoked_reason = ${r.reason}
      WHERE id = ANY(${r.ids}::uuid[]) AND revoked_at IS NULL RETURNING id`
  })

  const revokeOne = SqlSchema.findOne({
    Request: Schema.Struct({ userId: Schema.String, sessionId: Schema.String, reason: Schema.String }),
    Result: Id,
    execute: (r) => sql`
      UPDATE sessions SET revoked_at = now(), revoked_reason = ${r.reason}
      WHERE id = ${r.sessionId} AND user_id = ${r.userId} AND revoked_at IS NULL RETURNING id`
  })

  const revokeOfUser = SqlSchema.findAll({
    Request: Schema.Struct({ userId: Schema.String, reason: Schema.String, except: Schema.NullOr(Schema.String) }),
    Result: Id,
    execute: (r) => sql`
      UPDATE sessions SET revoked_at = now(), revoked_reason = ${r.reason}
      WHERE user_id = ${r.userId} AND revoked_at IS NULL
        AND id <> ${r.except ?? "00000000-0000-0000-0000-000000000000"}
      RETURNING id`
  })

  const listLive = SqlSchema.findAll({
    Request: Schema.String,
    Result: SessionRow,
    execute: (userId) => sql`
      SELECT id, created_at, last_used_at, least(idle_expires_at, absolute_expires_at) AS expires_at, ip, user_agent
      FROM sessions
      WHERE user_id = ${userId} AND revoked_at IS NULL AND idle_expires_at > now() AND absolute_expires_at > now()
      ORDER BY last_used_at DESC`
  })

  const standingOf = SqlSchema.findAll({
    Request: Ids,
    Result: Schema.Struct({
      id: Schema.String,
      revoked: Schema.Boolean,
      absoluteExpiresAt: Schema.DateFromSelf
    }),
    execute: (ids) => sql`
      SELECT id, revoked_at IS NOT NULL AS revoked, absolute_expires_at
      FROM sessions WHERE id = ANY(${ids}::uuid[])`
  })

  /**
   * Each session's row (none when it never existed), for everyone asking at once in one statement:
   * a reconnect storm of thousands of tickets and live sessions, or a burst of requests the
   * revocation guard sends to Postgres, reads once per batch. A caller never joins a read already
   * under way (Coalesce.ts), so the answer is never older than the question.
   */
  const standing = batched((ids: ReadonlyArray<string>) => {
    const wellFormed = ids.filter((id) => UUID.test(id))
    return Effect.map(
      wellFormed.length === 0 ? Effect.succeed([]) : readFailure("sessions")(standingOf(wellFormed)),
      (rows) => {
        const byId = new Map(rows.map((row) => [row.id, row]))
        return ids.map((id) => byId.get(id))
      }
    )
  })

  const revokedAmong = SqlSchema.findAll({
    Request: Ids,
    Result: Revoked,
    execute: (ids) => sql`
      SELECT id, revoked_reason FROM sessions WHERE id = ANY(${ids}::uuid[]) AND revoked_at IS NOT NULL`
  })

  const revokedWithin = SqlSchema.findAll({
    Request: Schema.Number,
    Result: Revoked,
    execute: (seconds) => sql`
      SELECT id, revoked_reason FROM sessions
      WHERE revoked_at > now() - make_interval(secs => ${seconds}::double precision)`
  })

  return Sessions.of({
    start: Effect.fn("Sessions.start")(function* (userId, device) {
      const now = yield* Clock.currentTimeMillis
      const refreshToken = Secrets.newToken()
      return yield* Effect.gen(function* () {
        const session = yield* insertSession({
          userId,
          idleExpiresAt: new Date(now + Duration.toMillis(idleTtl)),
          absoluteExpiresAt: new Date(now + Duration.toMillis(absoluteTtl)),
          ip: device.ip,
          userAgent: device.userAgent
        })
        if (Option.isNone(session)) return Option.none()
        yield* insertRefreshToken(session.value.id, refreshToken)
        return Option.some({ sessionId: session.value.id, refreshToken })
      }).pipe(orDie, (effect) => transaction(effect, () => false))
    }),

    rotate: Effect.fn("Sessions.rotate")(function* (refreshToken, device) {
      return yield* Effect.gen(function* () {
        const rotated = yield* rotateToken(refreshToken)
        if (Option.isNone(rotated)) {
          // Unknown, or rotated already: a replay. RFC 9700 §4.14.2: end the whole family.
          const family = yield* familyOf(refreshToken)
          if (Option.isNone(family)) return Rotation.Refused()
          const { id, userId, live } = family.value
          if (live) {
            yield* revokeIds({ ids: [id], reason: "refresh_token_reuse" })
            yield* recordRevoked(userId, [id], "refresh_token_reuse")
          }
          return Rotation.Reused({ sessionId: id, userId, ended: live })
        }
        const sessionId = rotated.value.sessionId
        const session = yield* touch({ sessionId, ip: device.ip, userAgent: device.userAgent })
        if (Option.isNone(session)) return Rotation.Refused()
        const next = Secrets.newToken()
        yield* insertRefreshToken(sessionId, next)
        return Rotation.Rotated({ sessionId, userId: session.value.userId, refreshToken: next })
      }).pipe(orDie, (effect) => transaction(effect, (r) => r._tag === "Reused" && r.ended))
    }),

    list: Effect.fn("Sessions.list")(function* (userId) {
      return yield* orDie(listLive(userId))
    }),

    revoke: Effect.fn("Sessions.revoke")(function* (userId, sessionId, reason) {
      return yield* Effect.gen(function* () {
        const revoked = yield* revokeOne({ userId, sessionId, reason })
        if (Option.isSome(revoked)) yield* recordRevoked(userId, [sessionId], reason)
        return Option.isSome(revoked)
      }).pipe(orDie, (effect) => transaction(effect, (revoked) => revoked))
    }),

    revokeAll: Effect.fn("Sessions.revokeAll")(function* (userId, reason, options) {
      return yield* Effect.gen(function* () {
        const rows = yield* revokeOfUser({ userId, reason, except: options?.except ?? null })
        const ids = rows.map((row) => row.id)
        yield* recordRevoked(userId, ids, reason)
        return ids
      }).pipe(orDie, (effect) => transaction(effect, (ids) => ids.length > 0))
    }),

    absoluteExpiry: spanned("Sessions.absoluteExpiry", (sessionId: string) =>
      Effect.map(standing(sessionId), (row) =>
        row === undefined || row.revoked ? Option.none() : Option.some(row.absoluteExpiresAt)
      )
    ),

    hasEnded: spanned("Sessions.hasEnded", (sessionId: string) =>
      Effect.map(standing(sessionId), (row) => row === undefined || row.revoked)
    ),

    revokedAmong: spannedGen("Sessions.revokedAmong", function* (sessionIds) {
      if (sessionIds.length === 0) return []
      const rows = yield* readFailure("revokedAmong")(revokedAmong(sessionIds))
      return rows.map(toRevoked)
    }),

    revokedWithin: Effect.fn("Sessions.revokedWithin")(function* (seconds) {
      const rows = yield* readFailure("revokedWithin")(revokedWithin(seconds))
      return rows.map(toRevoked)
    })
  })
})

export const SessionsLive = Layer.effect(Sessions, make)
