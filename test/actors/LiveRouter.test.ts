import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Layer, Schema } from "effect"
import { LiveRouterLive } from "../../src/actors/LiveRouter.ts"
import { type Registry, type SessionHandle, SessionRegistry } from "../../src/actors/SessionRegistry.ts"
import { EventStreamMemory } from "../../src/layers/memory/EventStreamMemory.ts"
import { EventStream } from "../../src/services/EventStream.ts"
import { Outbox, type OutboxEvent, OutboxEventJson, PERMISSION_EVENTS_STREAM } from "../../src/services/Outbox.ts"
import { type RevokedSession, Sessions } from "../../src/services/Sessions.ts"

const encode = Schema.encodeSync(OutboxEventJson)

let nextId = 0
const event = (
  organizationId: string,
  revision: number,
  type: string,
  payload: Record<string, unknown>
): OutboxEvent => ({
  id: String(++nextId),
  organizationId,
  revision: String(revision),
  type,
  payload,
  createdAt: new Date().toISOString()
})

/** A handle that counts what the router asked of it. */
const handle = (registry: Registry, id: number, userId: string, organizationId: string, roleIds: Array<string>) => {
  const calls = { refresh: 0, revoked: [] as Array<string> }
  const h: SessionHandle = {
    connectionId: id,
    sessionId: `s${id}`,
    userId,
    organizationId,
    refresh: () => {
      calls.refresh += 1
    },
    revoke: (reason) => {
      calls.revoked.push(reason)
    }
  }
  registry.register(h, roleIds)
  return calls
}

/** The outbox as Postgres holds it, for the router's gap filling. */
const outboxWith = (stored: Array<OutboxEvent>) =>
  Layer.succeed(
    Outbox,
    Outbox.of({
      record: () => Effect.die("unused"),
      recordUnscoped: () => Effect.die("unused"),
      transaction: () => Effect.die("unused") as never,
      wake: Effect.void,
      eventsSince: (organizationId, revision) =>
        Effect.succeed(
          stored.filter((e) => e.organizationId === organizationId && BigInt(e.revision!) > BigInt(revision))
        )
    })
  )

/** The sessions table as far as the router reads it: which of its sessions have ended. */
const sessionsWith = (revoked: Array<RevokedSession>) => {
  const unused = () => Effect.die("unused")
  return Layer.succeed(
    Sessions,
    Sessions.of({
      start: unused,
      rotate: unused,
      list: unused,
      revoke: unused,
      revokeAll: unused,
      absoluteExpiry: unused,
      hasEnded: unused,
      revokedWithin: unused,
      revokedAmong: (ids) => Effect.succeed(revoked.filter((session) => ids.includes(session.id)))
    })
  )
}

/** The memory stream, which answers the next read with a gap (entries lost) once `gap.armed` is set. */
const gap = { armed: false }
const streamWithGaps = Layer.effect(
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
).pipe(Layer.provide(EventStreamMemory))

const run = <A>(
  stored: Array<OutboxEvent>,
  body: (registry: Registry) => Effect.Effect<A, never, EventStream>,
  revoked: Array<RevokedSession> = []
) =>
  Effect.gen(function* () {
    const registry = yield* SessionRegistry
    // The router starts reading at the end of the stream: let it get there first.
    yield* Effect.sleep(Duration.millis(50))
    return yield* body(registry)
  }).pipe(
    Effect.provide(LiveRouterLive),
    Effect.provide(Layer.mergeAll(outboxWith(stored), sessionsWith(revoked))),
    Effect.provide(Layer.merge(streamWithGaps, SessionRegistry.layer)),
    Effect.scoped
  )

const publish = (...events: Array<OutboxEvent>) =>
  Effect.flatMap(EventStream, (stream) =>
    Effect.forEach(events, (e) => stream.append(PERMISSION_EVENTS_STREAM, encode(e)), { discard: true })
  ).pipe(Effect.orDie)

const settle = Effect.sleep(Duration.millis(50))

describe("LiveRouter", () => {
  it.live("routes each event to the sessions it affects only, through the indexes", () =>
    run([], (registry) =>
      Effect.gen(function* () {
        const alice = handle(registry, 1, "alice", "o1", ["editor", "viewer"])
        const bob = handle(registry, 2, "bob", "o1", ["viewer"])
        const elsewhere = handle(registry, 3, "alice", "o2", ["o2-editor"])
        yield* publish(event("o1", 1, "role.grants_changed", { roleId: "editor" }))
        yield* settle
        expect([alice.refresh, bob.refresh, elsewhere.refresh]).toEqual([1, 0, 0])
        yield* publish(event("o1", 2, "assignment.added", { assignmentId: "a", userId: "bob", roleId: "x" }))
        yield* settle
        expect([alice.refresh, bob.refresh, elsewhere.refresh]).toEqual([1, 1, 0])
        yield* publish(event("o1", 3, "member.removed", { userId: "alice" }))
        yield* settle
        expect(alice.revoked).toEqual(["member_removed"])
        expect(elsewhere.revoked).toEqual([])
        yield* publish({ ...event("o1", 0, "user.disabled", { userId: "bob" }), organizationId: null, revision: null })
        yield* settle
        expect(bob.revoked).toEqual(["user_disabled"])
      })
    )
  )

  it.live("ignores a replayed event, and routes every event of one revision once", () =>
    run([], (registry) =>
      Effect.gen(function* () {
        const alice = handle(registry, 1, "alice", "o1", ["editor"])
        const first = event("o1", 1, "role.grants_changed", { roleId: "editor" })
        const second = event("o1", 1, "assignment.added", { assignmentId: "a", userId: "alice", roleId: "editor" })
        yield* publish(first, second, first, second)
        yield* settle
        expect(alice.refresh).toBe(2)
        yield* publish(event("o1", 2, "role.grants_changed", { roleId: "editor" }), first)
        yield* settle
        expect(alice.refresh).toBe(3)
      })
    )
  )

  it.live("fills a revision jump from the outbox, so a change it never saw on the stream still arrives", () => {
    const missed = event("o1", 2, "assignment.removed", { assignmentId: "a", userId: "bob", roleId: "viewer" })
    return run([missed], (registry) =>
      Effect.gen(function* () {
        handle(registry, 1, "alice", "o1", ["editor"])
        const bob = handle(registry, 2, "bob", "o1", ["viewer"])
        yield* publish(event("o1", 1, "role.grants_changed", { roleId: "editor" }))
        yield* settle
        // Revision 2 never reaches the stream; 3 does.
        yield* publish(event("o1", 3, "role.grants_changed", { roleId: "editor" }))
        yield* settle
        expect(bob.refresh).toBe(1)
      })
    )
  })

  it.live("resynchronises the organization's sessions when the missing events are past retention", () =>
    run([], (registry) =>
      Effect.gen(function* () {
        const alice = handle(registry, 1, "alice", "o1", ["editor"])
        const bob = handle(registry, 2, "bob", "o1", ["viewer"])
        yield* publish(event("o1", 1, "role.grants_changed", { roleId: "editor" }))
        yield* settle
        yield* publish(event("o1", 9, "role.grants_changed", { roleId: "editor" }))
        yield* settle
        expect(bob.refresh).toBe(1)
        expect(alice.refresh).toBe(3)
      })
    )
  )

  it.live("ends the live sessions a sessions.revoked event names, with the reason their session ended for", () =>
    run([], (registry) =>
      Effect.gen(function* () {
        const alice = handle(registry, 1, "alice", "o1", ["editor"])
        const phone = handle(registry, 2, "alice", "o2", ["viewer"])
        const bob = handle(registry, 3, "bob", "o1", ["viewer"])
        const revoked = (sessionIds: Array<string>, reason: string): OutboxEvent => ({
          ...event("o1", 0, "sessions.revoked", { userId: "alice", sessionIds, reason }),
          organizationId: null,
          revision: null
        })
        yield* publish(revoked(["s1"], "logout"))
        yield* settle
        expect([alice.revoked, phone.revoked, bob.revoked]).toEqual([["logout"], [], []])
        yield* publish(revoked(["s2"], "password_changed"), revoked(["s3"], "refresh_token_reuse"))
        yield* settle
        expect([phone.revoked, bob.revoked]).toEqual([["password_changed"], ["session_revoked"]])
      })
    )
  )

  it.live("after a gap in the stream, ends the sessions that ended meanwhile and refreshes the others", () =>
    run(
      [],
      (registry) =>
        Effect.gen(function* () {
          const alice = handle(registry, 1, "alice", "o1", ["editor"])
          const bob = handle(registry, 2, "bob", "o1", ["viewer"])
          gap.armed = true
          // Any entry wakes the router; its next read finds the gap.
          yield* publish(event("o9", 1, "organization.created", { organizationId: "o9", ownerId: "carol" }))
          yield* settle
          expect(bob.revoked).toEqual(["user_disabled"])
          expect(alice.revoked).toEqual([])
          expect(alice.refresh).toBe(1)
        }),
      [{ id: "s2", reason: "user_disabled" }]
    )
  )
})
