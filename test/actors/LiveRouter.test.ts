import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Layer, Schema } from "effect"
import { LiveRouterLive } from "../../src/actors/LiveRouter.ts"
import { type Registry, type SessionHandle, SessionRegistry } from "../../src/actors/SessionRegistry.ts"
import { EventStreamMemory } from "../../src/layers/memory/EventStreamMemory.ts"
import { EventStream } from "../../src/services/EventStream.ts"
import { Outbox, type OutboxEvent, OutboxEventJson, PERMISSION_EVENTS_STREAM } from "../../src/services/Outbox.ts"

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

const noSql = Layer.succeed(SqlClient.SqlClient, (() => Effect.succeed([])) as unknown as SqlClient.SqlClient)

const run = <A>(stored: Array<OutboxEvent>, body: (registry: Registry) => Effect.Effect<A, never, EventStream>) =>
  Effect.gen(function* () {
    const registry = yield* SessionRegistry
    // The router starts reading at the end of the stream: let it get there first.
    yield* Effect.sleep(Duration.millis(50))
    return yield* body(registry)
  }).pipe(
    Effect.provide(LiveRouterLive),
    Effect.provide(Layer.mergeAll(outboxWith(stored), noSql)),
    Effect.provide(Layer.merge(EventStreamMemory, SessionRegistry.layer)),
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
})
