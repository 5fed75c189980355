import { SqlClient } from "@effect/sql"
import { Clock, Effect, Layer, Option, Schedule, Schema } from "effect"
import { ServiceUnavailable } from "../../rpc/Errors.ts"
import { AccessTokens } from "../../services/AccessTokens.ts"
import { EventStream, StreamCursor } from "../../services/EventStream.ts"
import { KeyValueStore } from "../../services/KeyValueStore.ts"
import { Revocations } from "../../services/Revocations.ts"

export const AUTH_STREAM = "auth-events"
const STREAM_LENGTH = 10_000

const SessionsRevoked = Schema.parseJson(
  Schema.Struct({
    type: Schema.Literal("sessions.revoked"),
    sessionIds: Schema.Array(Schema.String),
    reason: Schema.String
  })
)
/** Decodes an entry of AUTH_STREAM (also read by the live-session router). */
export const decodeRevocationEvent = Schema.decodeUnknownOption(SessionsRevoked)
const decodeEvent = decodeRevocationEvent
const encodeEvent = Schema.encodeSync(SessionsRevoked)

const markerKey = (sessionId: string) => `revoked-session:${sessionId}`

/**
 * A session's end is written three ways: Postgres (by the caller, the truth), a marker in the
 * key-value store that outlives any access token of the session (what every node checks), and an
 * event that puts it into every node's in-process cache (so most revoked tokens are refused
 * without a round trip). When the store cannot answer, Postgres decides; when neither can, deny.
 */
export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const kv = yield* KeyValueStore
  const events = yield* EventStream
  const tokens = yield* AccessTokens
  const markerTtlMs = (tokens.ttlSeconds + 60) * 1000
  const cache = new Map<string, number>()

  const remember = (sessionIds: ReadonlyArray<string>) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      for (const id of sessionIds) cache.set(id, now + markerTtlMs)
    })

  const forgetExpired = Effect.map(Clock.currentTimeMillis, (now) => {
    for (const [id, until] of cache) if (until <= now) cache.delete(id)
  })

  /**
   * Sessions ended within an access token's lifetime, from Postgres: into this node's cache and
   * back into the store. Runs at start and whenever the stream shows a gap (the store may have lost
   * its data, markers included), so a token of an ended session never comes back to life.
   */
  const restore = Effect.gen(function* () {
    const rows = yield* sql<{ id: string; revokedReason: string | null }>`
      SELECT id, revoked_reason FROM sessions
      WHERE revoked_at > now() - ${`${Math.ceil(markerTtlMs / 1000)} seconds`}::interval`
    yield* remember(rows.map((row) => row.id))
    yield* Effect.forEach(rows, (row) => kv.set(markerKey(row.id), row.revokedReason ?? "revoked", markerTtlMs), {
      concurrency: 16,
      discard: true
    }).pipe(Effect.catchAll((error) => Effect.logWarning("revocations: could not restore markers", error)))
    if (rows.length > 0)
      yield* Effect.logInfo(`revocations: restored ${rows.length} recently ended sessions from Postgres`)
  })

  yield* restore.pipe(Effect.catchAllCause((cause) => Effect.logWarning("revocations: restore at start failed", cause)))

  const follow = Effect.gen(function* () {
    let cursor = yield* events.last(AUTH_STREAM).pipe(Effect.orElseSucceed(() => StreamCursor.start))
    while (true) {
      const result = yield* events.read(AUTH_STREAM, cursor, { block: "5 seconds", count: 500 })
      for (const entry of result.entries) {
        const event = decodeEvent(entry.payload)
        if (Option.isSome(event)) yield* remember(event.value.sessionIds)
        cursor = entry.id
      }
      if (result.gap) {
        yield* Effect.logWarning("revocations: gap in the event stream; restoring from Postgres")
        yield* restore
        cursor = yield* events.last(AUTH_STREAM)
      }
      yield* forgetExpired
    }
  }).pipe(
    Effect.tapErrorCause((cause) => Effect.logWarning("revocations: event stream read failed; retrying", cause)),
    Effect.retry(Schedule.spaced("1 second"))
  )
  yield* Effect.forkScoped(follow)

  const writeMarkers = (sessionIds: ReadonlyArray<string>, reason: string) =>
    Effect.all(
      [
        Effect.forEach(sessionIds, (id) => kv.set(markerKey(id), reason, markerTtlMs), { concurrency: 16 }),
        events.append(AUTH_STREAM, encodeEvent({ type: "sessions.revoked", sessionIds, reason }), {
          maxLength: STREAM_LENGTH
        })
      ],
      { concurrency: 2 }
    )

  return Revocations.of({
    revoke: (sessionIds, reason) =>
      sessionIds.length === 0
        ? Effect.void
        : remember(sessionIds).pipe(
            Effect.zipRight(
              writeMarkers(sessionIds, reason).pipe(
                Effect.retry(Schedule.exponential("100 millis").pipe(Schedule.intersect(Schedule.recurs(8)))),
                Effect.catchAllCause((cause) =>
                  Effect.logError("revocations: could not write revocation markers; Postgres still refuses", cause)
                )
              )
            )
          ),
    isRevoked: (sessionId) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const cached = cache.get(sessionId)
        if (cached !== undefined && cached > now) return true
        const marker = yield* kv.get(markerKey(sessionId)).pipe(
          Effect.map(Option.isSome),
          Effect.catchAll((error) =>
            Effect.logWarning("revocations: key-value store unavailable; asking Postgres", error).pipe(
              Effect.zipRight(
                sql<{ revokedAt: Date | null }>`SELECT revoked_at FROM sessions WHERE id = ${sessionId}`.pipe(
                  Effect.map((rows) => rows[0] === undefined || rows[0].revokedAt !== null)
                )
              )
            )
          ),
          Effect.catchAllCause((cause) =>
            Effect.logError("revocations: cannot tell whether a session is alive; denying", cause).pipe(
              Effect.zipRight(new ServiceUnavailable({ message: "Cannot verify the session right now; try again" }))
            )
          )
        )
        if (marker) yield* remember([sessionId])
        return marker
      })
  })
})

export const RevocationsLive = Layer.scoped(Revocations, make)
