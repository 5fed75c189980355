import { randomUUID } from "node:crypto"
import { Clock, Deferred, Duration, Effect, FiberId, FiberSet, Layer, Option, Schedule, Schema } from "effect"
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
/** How long a node trusts its feed alone after a read that reached the head of the stream. */
const LEASE = Duration.seconds(1)
const LEASE_MS = Duration.toMillis(LEASE)
/** An idle feed reads again this often, well within LEASE, so an idle node keeps its lease. */
const FEED_BLOCK = Duration.millis(250)
const FEED_COUNT = 500
/** How long `revoke` waits for the relay to publish the event (as this node's feed sees it). */
const PUBLISH_WAIT = Duration.seconds(2)
/** After LEASE every node that has not applied an entry has lost its lease; the rest is clock drift. */
const APPLIED_WAIT = Duration.sum(LEASE, Duration.millis(100))
const APPLIED_POLL = Schedule.spaced(Duration.millis(5))
/** Session ids whose event this node's feed has seen, for `revoke` to find where it was published. */
const SEEN_MAX = 10_000
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
 * it into every node's in-process cache.
 *
 * Most checks are answered from that cache alone, under a lease: a node trusts its feed for LEASE
 * after a read that reached the head of the stream (taken from the moment the read started), and
 * only after saying so in the stream (`acknowledge`, good for LEASE). A `revoke` returns once every
 * node whose word still holds has applied the event, or LEASE after the event was published, when a
 * node that has not applied it has lost its lease: so the very next request anywhere is refused.
 *
 * Out of its lease, a node asks the store's marker, which counts only while the feed is caught up
 * (followed without a failed read or a gap from a position taken before its last restore from
 * Postgres); otherwise a missing marker proves nothing (the store may have lost it, and the event
 * may still wait in the outbox), so it asks Postgres until the feed has caught up. When the store
 * cannot answer, Postgres decides; when Postgres must decide and cannot, deny.
 */
export const make = Effect.gen(function* () {
  const kv = yield* KeyValueStore
  const events = yield* EventStream
  const tokens = yield* AccessTokens
  const sessions = yield* Sessions
  const clock = yield* Effect.clock
  const markerTtlMs = (tokens.ttlSeconds + 60) * 1000
  const reader = randomUUID()
  const cache = new Map<string, number>()
  const writes = yield* FiberSet.make<void>()
  /** See above: false from start, a failed read or a gap, until the next catch-up succeeds. */
  let caughtUp = false
  let cursor = StreamCursor.start
  /** When the last read that reached the head (and was acknowledged) started; the lease runs from it. */
  let leaseFrom: number | undefined
  const seen = new Map<string, StreamCursor>()
  const awaited = new Map<string, Deferred.Deferred<StreamCursor>>()

  const remember = (sessionIds: ReadonlyArray<string>) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      for (const id of sessionIds) cache.set(id, now + markerTtlMs)
    })

  /** Where the feed saw the event ending these sessions: for `revoke` calls waiting on it. */
  const published = (sessionIds: ReadonlyArray<string>, at: StreamCursor) => {
    for (const id of sessionIds) {
      seen.delete(id)
      seen.set(id, at)
      if (seen.size > SEEN_MAX) seen.delete(seen.keys().next().value!)
      const waiting = awaited.get(id)
      if (waiting !== undefined) {
        awaited.delete(id)
        Deferred.unsafeDone(waiting, Effect.succeed(at))
      }
    }
  }

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
    const startedAt = yield* Clock.currentTimeMillis
    const position = yield* events.last(PERMISSION_EVENTS_STREAM)
    yield* restore
    yield* events.acknowledge(PERMISSION_EVENTS_STREAM, reader, position, LEASE)
    cursor = position
    caughtUp = true
    // As good as a read that reached the head when `last` was asked: what ended before is restored.
    leaseFrom = startedAt
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
    const startedAt = yield* Clock.currentTimeMillis
    const result = yield* events.read(PERMISSION_EVENTS_STREAM, cursor, { block: FEED_BLOCK, count: FEED_COUNT })
    for (const entry of result.entries) {
      const ids = revokedSessionIds(entry.payload)
      if (Option.isSome(ids)) {
        yield* remember(ids.value)
        published(ids.value, entry.id)
      }
      cursor = entry.id
    }
    if (result.gap) {
      caughtUp = false
      leaseFrom = undefined
      return yield* Effect.logWarning("revocations: gap in the event stream; asking Postgres until caught up")
    }
    yield* events.acknowledge(PERMISSION_EVENTS_STREAM, reader, cursor, LEASE)
    if (result.entries.length < FEED_COUNT) leaseFrom = startedAt
    yield* forgetExpired
  })

  const follow = step.pipe(
    Effect.forever,
    Effect.catchAllCause((cause) =>
      Effect.gen(function* () {
        // Entries may be lost meanwhile, or published while this node could not read them.
        caughtUp = false
        leaseFrom = undefined
        if (!failing) yield* Effect.logWarning("revocations: event stream unavailable; asking Postgres", cause)
        failing = true
      })
    ),
    Effect.zipRight(Effect.sleep("1 second")),
    Effect.forever
  )
  yield* Effect.forkScoped(follow)

  /** Where the event ending these sessions was published, once this node's feed has seen it. */
  const publishedAt = (sessionIds: ReadonlyArray<string>) =>
    Effect.forEach(sessionIds, (id) =>
      Effect.suspend(() => {
        const at = seen.get(id)
        if (at !== undefined) return Effect.succeed(at)
        const waiting = awaited.get(id) ?? Deferred.unsafeMake<StreamCursor>(FiberId.none)
        awaited.set(id, waiting)
        return Deferred.await(waiting)
      })
    ).pipe(
      Effect.map((ats) => ats.reduce((a, b) => (StreamCursor.compare(a, b) >= 0 ? a : b))),
      Effect.ensuring(
        Effect.sync(() => {
          for (const id of sessionIds) awaited.delete(id)
        })
      )
    )

  /** Every node whose word holds has applied the stream up to `at`. */
  const appliedEverywhere = (at: StreamCursor) =>
    events.readers(PERMISSION_EVENTS_STREAM).pipe(
      Effect.map((readers) => readers.every((r) => StreamCursor.compare(r.cursor, at) >= 0)),
      Effect.orElseSucceed(() => false),
      Effect.repeat({ schedule: APPLIED_POLL, until: (done) => done })
    )

  /** Returns once no node can let the sessions' tokens through from memory (see above). */
  const propagated = (sessionIds: ReadonlyArray<string>) =>
    publishedAt(sessionIds).pipe(
      Effect.timeout(PUBLISH_WAIT),
      Effect.flatMap((at) => appliedEverywhere(at).pipe(Effect.timeout(APPLIED_WAIT), Effect.ignore)),
      Effect.catchTag("TimeoutException", () =>
        Effect.logWarning(
          "revocations: the sessions.revoked event is not published yet; other nodes refuse the sessions once it is"
        )
      )
    )

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

  const revokedNow = (sessionId: string): boolean | undefined => {
    const now = clock.unsafeCurrentTimeMillis()
    const cached = cache.get(sessionId)
    if (cached !== undefined && cached > now) return true
    return caughtUp && leaseFrom !== undefined && now - leaseFrom < LEASE_MS ? false : undefined
  }

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
      const markersTried = Deferred.await(tried).pipe(Effect.timeout(MARKER_WAIT), Effect.ignore)
      yield* Effect.all([markersTried, propagated(sessionIds)], { concurrency: 2, discard: true })
    }),

    revokedNow,

    isRevoked: spannedGen("Revocations.isRevoked", function* (sessionId) {
      const known = revokedNow(sessionId)
      if (known !== undefined) return known
      const revoked = yield* caughtUp ? markedInStore(sessionId) : endedInPostgres(sessionId)
      if (revoked) yield* remember([sessionId])
      return revoked
    })
  })
})

export const RevocationsLive = Layer.scoped(Revocations, make)
