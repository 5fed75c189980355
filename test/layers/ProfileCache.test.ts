import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { type Context, Duration, Effect, Layer, Option } from "effect"
import { ProfileCache, ProfileCacheLive } from "../../src/layers/auth/ProfileCache.ts"
import { OutboxLive } from "../../src/layers/events/OutboxLive.ts"
import { layer as relayLayer } from "../../src/layers/events/OutboxRelay.ts"
import { EventStreamMemory } from "../../src/layers/memory/EventStreamMemory.ts"
import { EventStream, EventStreamError } from "../../src/services/EventStream.ts"
import { PERMISSION_EVENTS_STREAM } from "../../src/services/Outbox.ts"
import { ClockAtStart, createUser, DatabaseTest } from "./RbacLayers.ts"

/** What the nodes share: Postgres with its outbox, and the event stream the relay publishes to. */
const ClusterTest = Layer.mergeAll(OutboxLive, EventStreamMemory).pipe(
  Layer.provideMerge(DatabaseTest),
  Layer.provideMerge(ClockAtStart)
)

/** While `stream.down`, a node's reads of the event stream fail, as with Redis gone. */
const stream = { down: false }
const StreamSwitch = Layer.effect(
  EventStream,
  Effect.map(EventStream, (inner) =>
    EventStream.of({
      ...inner,
      read: (name, cursor, options) =>
        stream.down
          ? Effect.fail(new EventStreamError({ operation: "read", cause: "down" }))
          : inner
              .read(name, cursor, options)
              .pipe(
                Effect.flatMap((result) =>
                  stream.down
                    ? Effect.fail(new EventStreamError({ operation: "read", cause: "down" }))
                    : Effect.succeed(result)
                )
              ),
      last: (name) =>
        stream.down ? Effect.fail(new EventStreamError({ operation: "last", cause: "down" })) : inner.last(name)
    })
  )
)

const node = Layer.build(ProfileCacheLive.pipe(Layer.provide(StreamSwitch)))
const nameOn = (cache: Context.Context<ProfileCache>, userId: string) =>
  Effect.flatMap(ProfileCache, (profiles) => profiles.profile(userId)).pipe(
    Effect.provide(cache),
    Effect.map((found) => Option.getOrThrow(found).name)
  )

const realSleep = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))

/** Asks until `name` is answered, for up to 10 s; the last answer. */
const eventually = (ask: Effect.Effect<string>, name: string) =>
  Effect.gen(function* () {
    let seen = yield* ask
    for (let attempt = 0; attempt < 200 && seen !== name; attempt++) {
      yield* realSleep(50)
      seen = yield* ask
    }
    return seen
  })

const rename = (userId: string, name: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql`UPDATE users SET name = ${name} WHERE id = ${userId}`).pipe(
    Effect.orDie
  )

describe("ProfileCache (two nodes on Postgres and one event stream)", () => {
  it.layer(ClusterTest, { timeout: "120 seconds" })((it) => {
    it.scoped("answers from memory; the writer sees its change at once, the other node through the stream", () =>
      Effect.gen(function* () {
        yield* Layer.build(
          relayLayer({ maxLength: 10_000, retention: Duration.days(1), pollInterval: Duration.millis(200) })
        )
        const a = yield* node
        const b = yield* node
        const { userId } = yield* createUser("profile")
        // Both following and holding the profile.
        expect(yield* eventually(nameOn(a, userId), "profile")).toBe("profile")
        expect(yield* eventually(nameOn(b, userId), "profile")).toBe("profile")
        // Changed behind their backs (no event): both keep answering from memory.
        yield* rename(userId, "unseen")
        expect([yield* nameOn(a, userId), yield* nameOn(b, userId)]).toEqual(["profile", "profile"])

        // A change made as the product makes it, on node a: a at once, b once the event arrives.
        const change = Effect.flatMap(ProfileCache, (p) => p.changeWith(userId, rename(userId, "changed")))
        yield* change.pipe(Effect.provide(a))
        expect(yield* nameOn(a, userId)).toBe("changed")
        expect(yield* eventually(nameOn(b, userId), "changed")).toBe("changed")
      })
    )

    it.scoped("while the stream cannot be read, every answer comes from Postgres", () =>
      Effect.gen(function* () {
        const a = yield* node
        const { userId } = yield* createUser("outage")
        expect(yield* eventually(nameOn(a, userId), "outage")).toBe("outage")
        yield* rename(userId, "hidden")
        expect(yield* nameOn(a, userId)).toBe("outage")
        stream.down = true
        // A read in flight fails too (here: once an entry ends its wait, as Redis going away would).
        yield* Effect.flatMap(EventStream, (events) => events.append(PERMISSION_EVENTS_STREAM, "{}"))
        expect(yield* eventually(nameOn(a, userId), "hidden")).toBe("hidden")
        yield* rename(userId, "direct")
        expect(yield* nameOn(a, userId)).toBe("direct")
        stream.down = false
      })
    )
  })
})
