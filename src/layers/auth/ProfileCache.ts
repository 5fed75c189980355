/**
 * The signed-in user's profile (`GET /v1/me`) from memory. A profile changes rarely (email verified,
 * MFA turned on or off) and each change records `user.profile_changed` in the outbox with the write;
 * every node follows the event stream and forgets that user's entry (on `sessions.revoked` too: an
 * account deleted in the database ends its sessions that way), and the node that wrote forgets it at
 * once. So a node answers its own writes immediately and another node's within the stream's
 * latency. While the stream cannot be followed (unreachable, a gap, not yet caught up at start) the
 * cache is bypassed and Postgres answers, as the revocation feed does (R1). A read that raced an
 * invalidation is not kept. Bounded: at most MAX_PROFILES users, the least recently used dropped.
 */
import { Context, Effect, Layer, Option, Schema } from "effect"
import type { Me } from "../../rpc/Auth.ts"
import { EventStream } from "../../services/EventStream.ts"
import { event } from "../../services/Events.ts"
import { Outbox, OutboxEventJson, PERMISSION_EVENTS_STREAM } from "../../services/Outbox.ts"
import { makeUsers } from "./Users.ts"

const MAX_PROFILES = 100_000
const decodeEntry = Schema.decodeUnknownOption(OutboxEventJson)

export interface ProfileCacheShape {
  /** The user's profile; none when the account is gone. */
  readonly profile: (userId: string) => Effect.Effect<Option.Option<Me>>
  /** The profile when this node holds it and is following the changes; undefined otherwise (ask `profile`). */
  readonly profileNow: (userId: string) => Me | undefined
  /**
   * Runs `write`, a change to the user's profile, in a transaction with its `user.profile_changed`
   * event, then forgets this node's copy: the writer reads its own change at once.
   */
  readonly changeWith: <A, E, R>(userId: string, write: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

export class ProfileCache extends Context.Tag("app/layers/ProfileCache")<ProfileCache, ProfileCacheShape>() {}

const changedUser = (payload: string) =>
  Option.flatMap(decodeEntry(payload), (event) => {
    const userId = (event.payload as { userId?: unknown } | undefined)?.userId
    // Sessions ended (logout, a disabled or deleted account…): the account may be gone; read it again.
    const forgets = event.type === "user.profile_changed" || event.type === "sessions.revoked"
    return forgets && typeof userId === "string" ? Option.some(userId) : Option.none()
  })

export const make = Effect.gen(function* () {
  const users = yield* makeUsers
  const events = yield* EventStream
  const outbox = yield* Outbox
  const entries = new Map<string, Me>()
  /** Moves on every invalidation: a read that started before one is not kept. */
  let epoch = 0
  let following = false

  const forget = (userId: string) => {
    epoch += 1
    entries.delete(userId)
  }
  const forgetAll = () => {
    epoch += 1
    entries.clear()
  }

  const follow = Effect.gen(function* () {
    let cursor = yield* events.last(PERMISSION_EVENTS_STREAM)
    // Changes before this point are in Postgres, and nothing is cached yet from before it.
    forgetAll()
    following = true
    while (true) {
      const result = yield* events.read(PERMISSION_EVENTS_STREAM, cursor, { block: "5 seconds", count: 500 })
      for (const entry of result.entries) {
        Option.map(changedUser(entry.payload), forget)
        cursor = entry.id
      }
      if (result.gap) {
        following = false
        return yield* Effect.logWarning("profiles: gap in the event stream; asking Postgres until caught up")
      }
    }
  }).pipe(
    Effect.catchAllCause((cause) => Effect.logWarning("profiles: event stream unavailable; asking Postgres", cause)),
    Effect.ensuring(Effect.sync(() => (following = false))),
    Effect.zipRight(Effect.sleep("1 second")),
    Effect.forever
  )
  yield* Effect.forkScoped(follow)

  const profileNow = (userId: string) => {
    const found = entries.get(userId)
    if (found === undefined || !following) return undefined
    // Most recently used last: the first key is the one to drop.
    entries.delete(userId)
    entries.set(userId, found)
    return found
  }

  return ProfileCache.of({
    profileNow,
    profile: (userId) =>
      Effect.suspend(() => {
        const found = profileNow(userId)
        if (found !== undefined) return Effect.succeed(Option.some(found))
        const asked = epoch
        return Effect.tap(users.profile(userId), (read) =>
          Effect.sync(() => {
            if (Option.isNone(read) || !following || epoch !== asked) return
            entries.set(userId, read.value)
            if (entries.size > MAX_PROFILES) entries.delete(entries.keys().next().value!)
          })
        )
      }),
    changeWith: (userId, write) =>
      outbox
        .transaction(Effect.zipLeft(write, outbox.recordUnscoped([event("user.profile_changed", { userId })])))
        .pipe(Effect.ensuring(Effect.sync(() => forget(userId))))
  })
})

export const ProfileCacheLive = Layer.scoped(ProfileCache, make)
