import { Clock, Deferred, Duration, Effect, FiberSet, Layer, Option, Schedule, Schema } from "effect"
import { spannedGen } from "../../services/Span.ts"
import { ServiceUnavailable } from "../../rpc/Errors.ts"
import { AccessTokens } from "../../services/AccessTokens.ts"
import { EventStream, StreamCursor } from "../../services/EventStream.ts"
import { EventPayloads } from "../../services/Events.ts"
import { KeyValueError, KeyValueStore } from "../../services/KeyValueStore.ts"
import { OutboxEventJson, PERMISSION_EVENTS_STREAM } from "../../services/Outbox.ts"
import { Revocations } from "../../services/Revocations.ts"
import { batched } from "../Coalesce.ts"
import { Sessions } from "../../services/Sessions.ts"

const REVOKED = "sessions.revoked"
const decodeEntry = Schema.decodeUnknownOption(OutboxEventJson)
const decodeRevoked = Schema.decodeUnknownOption(EventPayloads[REVOKED])

/** How long `revoke` waits for the store before it returns and leaves the markers to the background. */
const MARKER_WAIT = Duration.seconds(1)
const MARKER_RETRY = Schedule.exponential("100 millis").pipe(Schedule.intersect(Schedule.recurs(8)))
/** How long a node's start waits to catch up before it starts behind (asking Postgres). */
const START_WAIT = Duration.seconds(5)
/** How long a check waits for the store before Postgres decides (a store that hangs). */
const STORE_WAIT = Duration.seconds(1)

const markerKey = (sessionId: string) => `revoked-session:${sessionId}`

/** The ids of a `sessions.revoked` stream entry; `None` for every other entry. */
export const revokedSessionIds = (entry: string): Option.Option<ReadonlyArray<string>> =>
  // Most entries are permission changes: skip them without parsing.
  entry.includes(REVOKED)
    ? decodeEntry(entry).pipe(
        Option.filter((event) => event.type === REVOKED),
        Option.flatMap((event) => decodeRevoked(event.payload)),
        Option.map((payload) => payload.sessionIds)
      )
    : Option.none()

/**
 * A session's end is written three ways: Postgres (Sessions, the truth, with its outbox event), a
 * marker in the key-value store that outlives any access token of the session, and the event,
 * which the outbox relay publishes once the stream can take it (after any outage) and which puts
 * it into every node's in-process cache (so most revoked tokens are refused without a round trip).
 *
 * The store's answer counts only while this node's feed is caught up: it has followed the stream,
 * without a failed read or a gap, from a position taken before its last restore from Postgres.
 * Otherwise a missing marker proves nothing (the store may have lost it, or never got it, and the
 * event may still wait in the outbox), so every check asks Postgres until the feed has caught up.
 * When the store cannot answer, Postgres decides; when Postgres must decide and cannot, deny.
 */
export const make = Effect.gen(function* () {
  const kv = yield* KeyValueStore
  const events = yield* EventStream
  const tokens = yield* AccessTokens
  const sessions = yield* Sessions
  const markerTtlMs = (tokens.ttlSeconds + 60) * 1000
  const cache = new Map<string, number>()
  const writes = yield* FiberSet.make<void>()
  /** See above: false from start, a failed read or a gap, until the next catch-up succeeds. */
  let caughtUp = false
  let cursor = StreamCursor.start

  const remember = (sessionIds: ReadonlyArray<string>) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      for (const id of sessionIds) cache.set(id, now + markerTtlMs)
    })

  const forgetExpired = Effect.map(Clock.currentTimeMillis, (now) => {
    for (const [id, until] of cache) if (until <= now) cache.delete(id)
  })

  const writeMarkers = (sessionIds: ReadonlyArray<string>, reason: (id: string) => string) =>
    Effect.forEach(sessionIds, (id) => kv.set(markerKey(id), reason(id), markerTtlMs), {
      concurrency: 16,
      discard: true
    })

  /**
   * Sessions ended within an access token's lifetime, from Postgres: into this node's cache and
   * back into the store (it may have lost its data, markers included).
   */
  const restore = Effect.gen(function* () {
    const ended = yield* sessions.revokedWithin(Math.ceil(markerTtlMs / 1000))
    yield* remember(ended.map((session) => session.id))
    const reasons = new Map(ended.map((session) => [session.id, session.reason]))
    yield* writeMarkers([...reasons.keys()], (id) => reasons.get(id) ?? "revoked").pipe(
      Effect.catchAll((error) => Effect.logWarning("revocations: could not restore markers", error))
    )
    if (ended.length > 0)
      yield* Effect.logInfo(`revocations: restored ${ended.length} recently ended sessions from Postgres`)
  })

  /**
   * The stream's position first, then Postgres: a session ended before the restore reads is in
   * it, and the event of one ended later is published after the position, where the feed reads it.
   */
  const catchUp = Effect.gen(function* () {
    const position = yield* events.last(PERMISSION_EVENTS_STREAM)
    yield* restore
    cursor = position
    caughtUp = true
  })

  // At start, so that a node normally begins caught up; when it cannot (or the store hangs), the
  // node starts anyway, asking Postgres, and the feed keeps trying.
  yield* catchUp.pipe(
    Effect.timeoutFail({ duration: START_WAIT, onTimeout: () => "timed out" }),
    Effect.catchAllCause((cause) =>
      Effect.logWarning("revocations: cannot catch up at start; asking Postgres until the feed has", cause)
    )
  )

  let failing = false
  const step = Effect.gen(function* () {
    if (!caughtUp) {
      yield* catchUp
      if (failing) yield* Effect.logInfo("revocations: event stream is back; caught up from Postgres")
      failing = false
    }
    const result = yield* events.read(PERMISSION_EVENTS_STREAM, cursor, { block: "5 seconds", count: 500 })
    for (const entry of result.entries) {
      const ids = revokedSessionIds(entry.payload)
      if (Option.isSome(ids)) yield* remember(ids.value)
      cursor = entry.id
    }
    if (result.gap) {
      caughtUp = false
      yield* Effect.logWarning("revocations: gap in the event stream; asking Postgres until caught up")
    }
    yield* forgetExpired
  })

  const follow = step.pipe(
    Effect.forever,
    Effect.catchAllCause((cause) =>
      Effect.gen(function* () {
        // Entries may be lost meanwhile, or published while this node could not read them.
        caughtUp = false
        if (!failing) yield* Effect.logWarning("revocations: event stream unavailable; asking Postgres", cause)
        failing = true
      })
    ),
    Effect.zipRight(Effect.sleep("1 second")),
    Effect.forever
  )
  yield* Effect.forkScoped(follow)

  /** Postgres decides; when it cannot, deny. */
  const endedInPostgres = (sessionId: string) =>
    sessions
      .hasEnded(sessionId)
      .pipe(
        Effect.catchAllCause((cause) =>
          Effect.logError("revocations: cannot tell whether a session is alive; denying", cause).pipe(
            Effect.zipRight(new ServiceUnavailable({ message: "Cannot verify the session right now; try again" }))
          )
        )
      )

  /** Markers asked for together are read together (one MGET for a burst of requests). */
  const marker = batched((sessionIds: ReadonlyArray<string>) =>
    kv.getMany(sessionIds.map(markerKey)).pipe(
      Effect.timeoutFail({
        duration: STORE_WAIT,
        onTimeout: () => new KeyValueError({ operation: "getMany", cause: "timed out" })
      })
    )
  )

  /** The marker; Postgres when the store fails or does not answer in time. */
  const markedInStore = (sessionId: string) =>
    marker(sessionId).pipe(
      Effect.timeoutFail({
        duration: STORE_WAIT,
        onTimeout: () => new KeyValueError({ operation: "get", cause: "timed out" })
      }),
      Effect.map(Option.isSome),
      Effect.catchAll((error) =>
        Effect.logWarning("revocations: key-value store unavailable; asking Postgres", error).pipe(
          Effect.zipRight(endedInPostgres(sessionId))
        )
      )
    )

  return Revocations.of({
    revoke: Effect.fn("Revocations.revoke")(function* (sessionIds, reason) {
      if (sessionIds.length === 0) return
      yield* remember(sessionIds)
      const tried = yield* Deferred.make<void>()
      yield* FiberSet.run(
        writes,
        writeMarkers(sessionIds, () => reason).pipe(
          Effect.onExit(() => Deferred.succeed(tried, undefined)),
          Effect.retry(MARKER_RETRY),
          Effect.catchAllCause((cause) =>
            Effect.logError(
              "revocations: could not write revocation markers; the outbox event still reaches every node",
              cause
            )
          )
        )
      )
      // The request waits for the first attempt only, and not long: a store that is down fails at
      // once, one that hangs is left to the background retries.
      yield* Deferred.await(tried).pipe(Effect.timeout(MARKER_WAIT), Effect.ignore)
    }),

    isRevoked: spannedGen("Revocations.isRevoked", function* (sessionId) {
      const now = yield* Clock.currentTimeMillis
      const cached = cache.get(sessionId)
      if (cached !== undefined && cached > now) return true
      const revoked = yield* caughtUp ? markedInStore(sessionId) : endedInPostgres(sessionId)
      if (revoked) yield* remember([sessionId])
      return revoked
    })
  })
})

export const RevocationsLive = Layer.scoped(Revocations, make)
