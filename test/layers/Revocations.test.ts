import { randomUUID } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import { type Context, Duration, Effect, Fiber, Layer, Option, Schema, TestClock } from "effect"
import { RevocationsLive } from "../../src/layers/auth/RevocationsLive.ts"
import { SessionsLive } from "../../src/layers/auth/SessionsLive.ts"
import { OutboxLive } from "../../src/layers/events/OutboxLive.ts"
import { layer as relayLayer } from "../../src/layers/events/OutboxRelay.ts"
import { EventStreamMemory } from "../../src/layers/memory/EventStreamMemory.ts"
import { KeyValueStoreMemory } from "../../src/layers/memory/KeyValueStoreMemory.ts"
import { AccessTokens } from "../../src/services/AccessTokens.ts"
import { EventStream, EventStreamError } from "../../src/services/EventStream.ts"
import { KeyValueError, KeyValueStore } from "../../src/services/KeyValueStore.ts"
import { OutboxEventJson, PERMISSION_EVENTS_STREAM } from "../../src/services/Outbox.ts"
import { Revocations } from "../../src/services/Revocations.ts"
import { SessionStoreError, Sessions } from "../../src/services/Sessions.ts"
import { ClockAtStart, createUser, DatabaseTest } from "./RbacLayers.ts"

/** Short, so that the TestClock can step through a token's lifetime (every feed read of the way). */
const TOKEN_TTL_SECONDS = 30
/** Longer than a node's lease on its feed (1 s): a node whose feed stopped no longer answers from memory. */
const PAST_LEASE = Duration.millis(1_200)

const AccessTokensTest = Layer.succeed(
  AccessTokens,
  AccessTokens.of({
    ttlSeconds: TOKEN_TTL_SECONDS,
    jwks: { keys: [] },
    issue: () => Effect.die("unused"),
    verify: () => Effect.die("unused"),
    verifiedNow: () => undefined
  })
)

/** What the nodes of one cluster share: Postgres (sessions, outbox), the key-value store, the stream. */
const ClusterTest = SessionsLive.pipe(
  Layer.provideMerge(Layer.mergeAll(OutboxLive, KeyValueStoreMemory, EventStreamMemory, AccessTokensTest)),
  Layer.provideMerge(DatabaseTest),
  Layer.provideMerge(ClockAtStart)
)

/** The cluster with its outbox relay, which publishes every committed event (woken by NOTIFY). */
const RelayedClusterTest = relayLayer({
  maxLength: 10_000,
  retention: Duration.days(1),
  pollInterval: Duration.seconds(1)
}).pipe(Layer.provideMerge(ClusterTest))

/** The nodes of earlier tests are gone: their word on the stream runs out before this test's begin. */
const earlierNodesGone = TestClock.adjust(PAST_LEASE)

/** A key-value store whose every call does `answer` (the operations Revocations uses). */
const storeThat = (answer: () => Effect.Effect<never, KeyValueError>) =>
  Layer.succeed(
    KeyValueStore,
    KeyValueStore.of({
      get: answer,
      getMany: answer,
      set: answer,
      setIfAbsent: answer,
      consume: answer,
      compareAndSet: answer,
      compareAndDelete: answer,
      increment: answer,
      delete: answer
    })
  )

/** A store that is down: every call fails at once, as ioredis does without a connection. */
const StoreDown = storeThat(() => Effect.fail(new KeyValueError({ operation: "test", cause: "down" })))

/** The cluster's store, until `hang.armed`: from then on it never answers. */
const hang = { armed: false }
const StoreHanging = Layer.effect(
  KeyValueStore,
  Effect.map(KeyValueStore, (inner) =>
    KeyValueStore.of({
      ...inner,
      get: (key) => (hang.armed ? Effect.never : inner.get(key)),
      getMany: (keys) => (hang.armed ? Effect.never : inner.getMany(keys)),
      set: (key, value, ttl) => (hang.armed ? Effect.never : inner.set(key, value, ttl))
    })
  )
)

/** Postgres unreachable for the sessions check. */
const PostgresDown = Layer.effect(
  Sessions,
  Effect.map(Sessions, (sessions) =>
    Sessions.of({
      ...sessions,
      hasEnded: () => Effect.fail(new SessionStoreError({ operation: "hasEnded", cause: "down" }))
    })
  )
)

/** The memory stream, which answers the next read with a gap (entries lost) once `gap.armed` is set. */
const gap = { armed: false }
const StreamWithGaps = Layer.effect(
  EventStream,
  Effect.map(EventStream, (inner) =>
    EventStream.of({
      ...inner,
      read: (name, cursor, options) => {
        if (!gap.armed) return inner.read(name, cursor, options)
        gap.armed = false
        return Effect.succeed({ entries: [], gap: true })
      }
    })
  )
)

/** The stream as one node sees it: once `stall.armed`, its reads never return (a node that hangs). */
const stall = { armed: false }
const StreamStalling = Layer.effect(
  EventStream,
  Effect.map(EventStream, (inner) =>
    EventStream.of({
      ...inner,
      read: (name, cursor, options) =>
        stall.armed
          ? Effect.never
          : inner
              .read(name, cursor, options)
              .pipe(Effect.flatMap((result) => (stall.armed ? Effect.never : Effect.succeed(result))))
    })
  )
)

/** Redis as one node sees it: while `redis.down`, its store and its stream fail (a read in flight too). */
const redis = { down: false }
const redisDown = <A>(operation: string) =>
  Effect.fail(new KeyValueError({ operation, cause: "down" })) as Effect.Effect<A, KeyValueError>
const streamDown = Effect.fail(new EventStreamError({ operation: "read", cause: "down" }))
const RedisSwitch = Layer.merge(
  Layer.effect(
    KeyValueStore,
    Effect.map(KeyValueStore, (inner) =>
      KeyValueStore.of({
        ...inner,
        get: (key) => (redis.down ? redisDown("get") : inner.get(key)),
        getMany: (keys) => (redis.down ? redisDown("getMany") : inner.getMany(keys)),
        set: (key, value, ttl) => (redis.down ? redisDown("set") : inner.set(key, value, ttl))
      })
    )
  ),
  Layer.effect(
    EventStream,
    Effect.map(EventStream, (inner) =>
      EventStream.of({
        ...inner,
        read: (name, cursor, options) =>
          redis.down
            ? streamDown
            : inner
                .read(name, cursor, options)
                .pipe(Effect.flatMap((result) => (redis.down ? streamDown : Effect.succeed(result)))),
        last: (name) => (redis.down ? streamDown : inner.last(name)),
        acknowledge: (name, reader, cursor, ttl) =>
          redis.down ? streamDown : inner.acknowledge(name, reader, cursor, ttl),
        readers: (name) => (redis.down ? streamDown : inner.readers(name))
      })
    )
  )
)

/** The stream entry the outbox relay publishes for a logout. */
const revokedEntry = (userId: string, sessionId: string) =>
  Schema.encodeSync(OutboxEventJson)({
    id: String(Math.floor(Math.random() * 1e12)),
    organizationId: null,
    revision: null,
    type: "sessions.revoked",
    payload: { userId, sessionIds: [sessionId], reason: "logout" },
    createdAt: new Date().toISOString()
  })

/** One node's Revocations, over the cluster's services but those `replace` provides. */
const node = <ROut, E, RIn>(replace: Layer.Layer<ROut, E, RIn>) =>
  Layer.build(RevocationsLive.pipe(Layer.provide(replace)))
const clusterNode = node(Layer.empty)

const on = (revocations: Context.Context<Revocations>) => (sessionId: string) =>
  Effect.flatMap(Revocations, (r) => r.isRevoked(sessionId)).pipe(Effect.provide(revocations))

const device = { ip: "127.0.0.1", userAgent: "layer-test" }

/** A signed-in user's session. */
const startSession = Effect.gen(function* () {
  const sessions = yield* Sessions
  const { userId } = yield* createUser("revocations")
  const started = yield* sessions.start(userId, device)
  return { userId, sessionId: Option.getOrThrow(started).sessionId }
})

/** Logout as SignIn does it: Postgres (with the outbox event), then this node. */
const endOn = (revocations: Context.Context<Revocations>, userId: string, sessionId: string) =>
  Effect.gen(function* () {
    expect(yield* Effect.flatMap(Sessions, (s) => s.revoke(userId, sessionId, "logout"))).toBe(true)
    yield* Effect.flatMap(Revocations, (r) => r.revoke([sessionId], "logout")).pipe(Effect.provide(revocations))
  })

/** Ended in Postgres only, as if the store had lost its marker. */
const endInPostgresOnly = (userId: string, sessionId: string) =>
  Effect.flatMap(Sessions, (s) => s.revoke(userId, sessionId, "logout"))

const realSleep = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))

/** Asks again (real time passing, the TestClock still) until `check` holds, for up to 10 s. */
const eventually = <E, R>(check: Effect.Effect<boolean, E, R>) =>
  Effect.gen(function* () {
    for (let attempt = 0; attempt < 200; attempt++) {
      if (yield* check.pipe(Effect.orElseSucceed(() => false))) return true
      yield* realSleep(50)
    }
    return false
  })

describe("Revocations with the outbox relay (layers on Postgres)", () => {
  it.layer(RelayedClusterTest, { timeout: "120 seconds" })((it) => {
    it.scoped("a revoked session is refused by the very next check, on this node and on another", () =>
      Effect.gen(function* () {
        yield* earlierNodesGone
        const a = yield* clusterNode
        const b = yield* clusterNode
        const { userId, sessionId } = yield* startSession
        const other = yield* startSession
        expect([yield* on(a)(sessionId), yield* on(b)(sessionId)]).toEqual([false, false])
        yield* endOn(a, userId, sessionId)
        expect([yield* on(a)(sessionId), yield* on(b)(sessionId)]).toEqual([true, true])
        expect([yield* on(a)(other.sessionId), yield* on(b)(other.sessionId)]).toEqual([false, false])
      })
    )

    it.scoped(
      "in its lease a node answers from memory, neither store nor Postgres asked; a logout reaches it before it returns",
      () =>
        Effect.gen(function* () {
          yield* earlierNodesGone
          const stream = yield* EventStream
          const from = yield* stream.last(PERMISSION_EVENTS_STREAM)
          const a = yield* clusterNode
          // Neither the store nor Postgres can answer here: only memory and the event can.
          const b = yield* node(Layer.merge(StoreDown, PostgresDown))
          const { userId, sessionId } = yield* startSession
          expect(yield* on(b)(sessionId)).toBe(false)
          expect(
            Option.isSome(
              yield* Effect.flatMap(Revocations, (r) => Effect.succeed(r.revokedNow(sessionId))).pipe(
                Effect.map(Option.fromNullable),
                Effect.provide(b)
              )
            )
          ).toBe(true)
          yield* endOn(a, userId, sessionId)
          expect(yield* on(b)(sessionId)).toBe(true)

          const published = yield* stream.read(PERMISSION_EVENTS_STREAM, from, { count: 10_000 })
          const revoked = published.entries
            .map((entry) => Schema.decodeUnknownSync(OutboxEventJson)(entry.payload))
            .filter((event) => event.type === "sessions.revoked" && event.payload.userId === userId)
          expect(revoked).toHaveLength(1)
          expect(revoked[0]).toMatchObject({
            organizationId: null,
            revision: null,
            payload: { userId, sessionIds: [sessionId], reason: "logout" }
          })
          // Out of its lease (its feed stopped), the same node has to ask, and cannot: deny.
          yield* Effect.sync(() => (stall.armed = true))
          const c = yield* node(Layer.mergeAll(StoreDown, PostgresDown, StreamStalling))
          yield* TestClock.adjust(PAST_LEASE)
          expect(yield* Effect.flip(on(c)(randomUUID()))).toMatchObject({ _tag: "ServiceUnavailable" })
        }).pipe(Effect.ensuring(Effect.sync(() => (stall.armed = false))))
    )

    it.scoped(
      "a logout waits for a node whose feed stalls until that node's lease has run out; the node then asks the store",
      () =>
        Effect.gen(function* () {
          yield* earlierNodesGone
          const a = yield* clusterNode
          const b = yield* node(StreamStalling)
          const { userId, sessionId } = yield* startSession
          expect(yield* on(b)(sessionId)).toBe(false)
          stall.armed = true
          expect(yield* Effect.flatMap(Sessions, (s) => s.revoke(userId, sessionId, "logout"))).toBe(true)
          const logout = yield* Effect.fork(
            Effect.flatMap(Revocations, (r) => r.revoke([sessionId], "logout")).pipe(Effect.provide(a))
          )
          // Published and applied by `a`, never by `b`, which still trusts its feed: the logout waits.
          yield* realSleep(300)
          expect(Option.isNone(yield* Fiber.poll(logout))).toBe(true)
          expect(yield* on(b)(sessionId)).toBe(false)
          yield* TestClock.adjust(PAST_LEASE)
          yield* Fiber.join(logout)
          // Out of its lease, `b` asks the store, which holds the marker.
          expect(yield* on(b)(sessionId)).toBe(true)
        }).pipe(Effect.ensuring(Effect.sync(() => (stall.armed = false))))
    )

    it.scoped("refuses a revoked session as long as its access tokens live, plus a minute, then forgets it", () =>
      Effect.gen(function* () {
        yield* earlierNodesGone
        const a = yield* clusterNode
        const kv = yield* KeyValueStore
        const { userId, sessionId } = yield* startSession
        yield* endOn(a, userId, sessionId)
        yield* TestClock.adjust(Duration.seconds(TOKEN_TTL_SECONDS + 59))
        expect(yield* on(a)(sessionId)).toBe(true)
        expect(Option.isSome(yield* kv.get(`revoked-session:${sessionId}`))).toBe(true)
        yield* TestClock.adjust(Duration.seconds(2))
        // Every access token of the session has expired by now: nothing is left to refuse.
        expect(Option.isNone(yield* kv.get(`revoked-session:${sessionId}`))).toBe(true)
        expect(yield* on(a)(sessionId)).toBe(false)
      })
    )

    it.scoped("revoke answers at once when the store is down, and within a second when it hangs", () =>
      Effect.gen(function* () {
        yield* earlierNodesGone
        const down = yield* node(StoreDown)
        const first = yield* startSession
        yield* endOn(down, first.userId, first.sessionId)
        expect(yield* on(down)(first.sessionId)).toBe(true)

        const hanging = yield* node(StoreHanging)
        const second = yield* startSession
        yield* endInPostgresOnly(second.userId, second.sessionId)
        hang.armed = true
        const logout = yield* Effect.fork(
          Effect.flatMap(Revocations, (r) => r.revoke([second.sessionId], "logout")).pipe(Effect.provide(hanging))
        )
        yield* realSleep(300)
        yield* TestClock.adjust(Duration.millis(999))
        expect(Option.isNone(yield* Fiber.poll(logout))).toBe(true)
        yield* TestClock.adjust(Duration.millis(1))
        yield* Fiber.join(logout)
        // Refused here from the node's own memory, whatever the store does.
        expect(yield* on(hanging)(second.sessionId)).toBe(true)
        hang.armed = false
      }).pipe(Effect.ensuring(Effect.sync(() => (hang.armed = false))))
    )
  })
})

describe("Revocations when the event is not published (layers on Postgres)", () => {
  it.layer(ClusterTest, { timeout: "120 seconds" })((it) => {
    it.scoped("Sessions.hasEnded asked by many at once (read together): each gets its own session's answer", () =>
      Effect.gen(function* () {
        const sessions = yield* Sessions
        const live = yield* Effect.all(Array.from({ length: 20 }, () => startSession))
        const ended = yield* Effect.all(Array.from({ length: 20 }, () => startSession))
        for (const { userId, sessionId } of ended) yield* endInPostgresOnly(userId, sessionId)
        const asked = [
          ...live.map((s) => ({ id: s.sessionId, ended: false })),
          ...ended.map((s) => ({ id: s.sessionId, ended: true })),
          { id: randomUUID(), ended: true },
          { id: "not-a-session-id", ended: true }
        ]
        const answers = yield* Effect.all(
          asked.map(({ id }) => sessions.hasEnded(id)),
          { concurrency: "unbounded" }
        )
        expect(answers).toEqual(asked.map((a) => a.ended))
      })
    )

    it.scoped("out of its lease, when the store cannot answer, Postgres decides; when neither can, deny", () =>
      Effect.gen(function* () {
        stall.armed = true
        const a = yield* node(Layer.merge(StoreDown, StreamStalling))
        const blind = yield* node(Layer.mergeAll(StoreDown, PostgresDown, StreamStalling))
        yield* TestClock.adjust(PAST_LEASE)
        const alive = yield* startSession
        const ended = yield* startSession
        yield* endInPostgresOnly(ended.userId, ended.sessionId)
        expect(yield* on(a)(alive.sessionId)).toBe(false)
        expect(yield* on(a)(ended.sessionId)).toBe(true)
        expect(yield* on(a)(randomUUID())).toBe(true)
        const error = yield* Effect.flip(on(blind)(alive.sessionId))
        expect(error).toMatchObject({ _tag: "ServiceUnavailable" })
      }).pipe(Effect.ensuring(Effect.sync(() => (stall.armed = false))))
    )

    it.scoped("a node starting restores the sessions ended meanwhile from Postgres, markers included", () =>
      Effect.gen(function* () {
        const { userId, sessionId } = yield* startSession
        yield* endInPostgresOnly(userId, sessionId)
        // A store that lost its data: it holds no marker.
        const store = yield* Layer.build(KeyValueStoreMemory)
        const fresh = yield* node(Layer.succeedContext(store))
        expect(yield* on(fresh)(sessionId)).toBe(true)
        const marker = yield* Effect.flatMap(KeyValueStore, (kv) => kv.get(`revoked-session:${sessionId}`)).pipe(
          Effect.provide(store)
        )
        expect(marker).toEqual(Option.some("logout"))
      })
    )

    it.scoped("after a gap in the stream (the store may have lost its data), restores from Postgres", () =>
      Effect.gen(function* () {
        const store = yield* Layer.build(KeyValueStoreMemory)
        const a = yield* node(Layer.merge(Layer.succeedContext(store), StreamWithGaps))
        const { userId, sessionId } = yield* startSession
        yield* endInPostgresOnly(userId, sessionId)
        expect(yield* on(a)(sessionId)).toBe(false)
        gap.armed = true
        // Any entry wakes the reader; its next read finds the gap.
        yield* Effect.flatMap(EventStream, (events) => events.append(PERMISSION_EVENTS_STREAM, "{}"))
        expect(yield* eventually(on(a)(sessionId))).toBe(true)
      })
    )

    it.scoped(
      "after a stream outage a node asks Postgres until it has caught up: a logout whose marker and entry it missed is refused (issue 12 item 9, R1)",
      () =>
        Effect.gen(function* () {
          const stream = yield* EventStream
          const b = yield* node(RedisSwitch)
          const c = yield* node(RedisSwitch)
          const { userId, sessionId } = yield* startSession
          expect(yield* on(b)(sessionId)).toBe(false)

          redis.down = true
          // The reads in flight end (after their block) in failures: both nodes stop trusting their feed.
          yield* TestClock.adjust(PAST_LEASE)
          yield* realSleep(100)
          // Logout on another node while Redis is down: Postgres and its outbox row; no marker.
          yield* endInPostgresOnly(userId, sessionId)
          // During the outage the store fails, so Postgres decides.
          expect(yield* on(c)(sessionId)).toBe(true)
          // Redis comes back empty and the relay publishes the event before b reads again: b's
          // reads failed meanwhile, so b never reads it.
          yield* stream.append(PERMISSION_EVENTS_STREAM, revokedEntry(userId, sessionId))
          yield* realSleep(100)
          redis.down = false
          // The store answers again and holds no marker: b must not take that for "alive".
          expect(yield* on(b)(sessionId)).toBe(true)
          // b catches up (stream position, then Postgres): it keeps refusing it; live sessions stay live.
          yield* TestClock.adjust(Duration.seconds(2))
          yield* realSleep(100)
          expect(yield* on(b)(sessionId)).toBe(true)
          const other = yield* startSession
          expect(yield* on(b)(other.sessionId)).toBe(false)
        }).pipe(Effect.ensuring(Effect.sync(() => (redis.down = false))))
    )

    it.scoped(
      "out of its lease, a check whose store hangs is decided by Postgres after a second (issue 12 item 9)",
      () =>
        Effect.gen(function* () {
          stall.armed = true
          const hanging = yield* node(Layer.merge(StoreHanging, StreamStalling))
          yield* TestClock.adjust(PAST_LEASE)
          const ended = yield* startSession
          const alive = yield* startSession
          yield* endInPostgresOnly(ended.userId, ended.sessionId)
          hang.armed = true
          const checks = yield* Effect.fork(
            Effect.all([on(hanging)(ended.sessionId), on(hanging)(alive.sessionId)], { concurrency: 2 })
          )
          yield* realSleep(50)
          yield* TestClock.adjust(Duration.seconds(1))
          expect(yield* Fiber.join(checks)).toEqual([true, false])
        }).pipe(
          Effect.ensuring(
            Effect.sync(() => {
              hang.armed = false
              stall.armed = false
            })
          )
        )
    )
  })
})
