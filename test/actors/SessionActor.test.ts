import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, TestClock } from "effect"
import { drained, socketClosed } from "../../src/actors/SessionActor.ts"
import { SessionRegistry } from "../../src/actors/SessionRegistry.ts"
import { LiveLimits } from "../../src/rpc/LiveProtocol.ts"
import {
  claims,
  fakeStore,
  Limits,
  nextInterval,
  open,
  RegistryLive,
  settle,
  snapshot,
  start
} from "../support/LiveActors.ts"

describe("SessionActor", () => {
  it.effect("says hello, pushes a diff only when something changed, and never goes back a revision", () =>
    Effect.gen(function* () {
      const actor = yield* start(snapshot(3, ["org:read"]))
      expect(actor.sent[0]).toMatchObject({
        type: "hello",
        revision: "3",
        permissions: ["org:read"],
        roles: ["member"]
      })

      // The first change is applied at once.
      actor.store.current.value = snapshot(4, ["org:read", "docs:read"])
      actor.handle().refresh()
      yield* settle
      expect(actor.sent[1]).toEqual({ type: "permissions", revision: "4", added: ["docs:read"], removed: [] })

      // Nothing changed for this session at revision 5: no frame, but an await sees 5.
      actor.store.current.value = snapshot(5, ["org:read", "docs:read"])
      actor.handle().refresh()
      yield* nextInterval
      expect(actor.sent).toHaveLength(2)
      actor.receive(JSON.stringify({ type: "await", id: "a", revision: "5" }))
      yield* settle
      expect(actor.sent[2]).toEqual({ type: "awaited", id: "a", revision: "5" })

      // An older snapshot (a slow read racing a newer one) is ignored.
      actor.store.current.value = snapshot(4, ["org:read"])
      actor.handle().refresh()
      yield* nextInterval
      expect(actor.sent).toHaveLength(3)
      yield* actor.close
    }).pipe(Effect.provide(RegistryLive))
  )

  it.effect("recomputes at most once per interval: the first change at once, the rest together at its end", () =>
    Effect.gen(function* () {
      const actor = yield* start(snapshot(1, []))
      const loads = () => actor.store.current.loads - 1
      actor.store.current.value = snapshot(2, ["a:read"])
      actor.handle().refresh()
      yield* settle
      expect(loads()).toBe(1)
      for (let i = 3; i < 50; i++) {
        actor.store.current.value = snapshot(i, [`k${i}:read`])
        actor.handle().refresh()
        yield* settle
      }
      yield* TestClock.adjust(LiveLimits.recomputeEveryMs - 1)
      yield* settle
      expect(loads()).toBe(1)
      yield* TestClock.adjust(1)
      yield* settle
      expect(loads()).toBe(2)
      expect(actor.sent.at(-1)).toEqual({
        type: "permissions",
        revision: "49",
        added: ["k49:read"],
        removed: ["a:read"]
      })
      // Quiet for a while: the next change is applied at once again.
      yield* TestClock.adjust(Duration.seconds(1))
      actor.store.current.value = snapshot(60, [])
      actor.handle().refresh()
      yield* settle
      expect(loads()).toBe(3)
      yield* actor.close
    }).pipe(Effect.provide(RegistryLive))
  )

  it.effect("sends resource-scoped keys and scoped denies in hello and their changes in diffs", () =>
    Effect.gen(function* () {
      const actor = yield* start(
        snapshot(1, ["docs:read"], {
          scoped: { "project/1": ["docs:write"] },
          scopedDenied: { "project/2": ["docs:read"] }
        })
      )
      expect(actor.sent[0]).toMatchObject({
        type: "hello",
        scoped: { "project/1": ["docs:write"] },
        scopedDenied: { "project/2": ["docs:read"] }
      })
      actor.store.current.value = snapshot(2, ["docs:read"], {
        scoped: { "project/1": ["docs:write"] },
        scopedDenied: { "project/3": ["docs:read"] }
      })
      actor.handle().refresh()
      yield* settle
      expect(actor.sent[1]).toEqual({
        type: "permissions",
        revision: "2",
        added: [],
        removed: [],
        scopedDeniedAdded: { "project/3": ["docs:read"] },
        scopedDeniedRemoved: { "project/2": ["docs:read"] }
      })
      yield* actor.close
    }).pipe(Effect.provide(RegistryLive))
  )

  it.effect("sends the role names in the diff when only they changed (a rename)", () =>
    Effect.gen(function* () {
      const actor = yield* start(snapshot(1, ["org:read"]))
      actor.store.current.value = snapshot(2, ["org:read"], { roles: ["reader"] })
      actor.handle().refresh()
      yield* settle
      expect(actor.sent[1]).toEqual({ type: "permissions", revision: "2", added: [], removed: [], roles: ["reader"] })
      yield* actor.close
    }).pipe(Effect.provide(RegistryLive))
  )

  it.effect("sends the new role names with the keys when an assignment changes both, and none when they stay", () =>
    Effect.gen(function* () {
      const actor = yield* start(snapshot(1, ["org:read"]))
      actor.store.current.value = snapshot(2, ["org:read", "docs:read"], { roles: ["member", "reader"] })
      actor.handle().refresh()
      yield* settle
      expect(actor.sent[1]).toEqual({
        type: "permissions",
        revision: "2",
        added: ["docs:read"],
        removed: [],
        roles: ["member", "reader"]
      })
      actor.store.current.value = snapshot(3, ["org:read"], { roles: ["member", "reader"] })
      actor.handle().refresh()
      yield* nextInterval
      expect(actor.sent[2]).toEqual({ type: "permissions", revision: "3", added: [], removed: ["docs:read"] })
      yield* actor.close
    }).pipe(Effect.provide(RegistryLive))
  )

  it.effect(
    "refuses to open with revoked, before any hello, a sign-in session that ended before the socket opened (S47)",
    () =>
      Effect.gen(function* () {
        const store = fakeStore(snapshot(1, ["org:read"]))
        store.current.ended = "logout"
        const registry = yield* SessionRegistry
        const { sent, state } = yield* open(store)
        yield* settle
        expect(sent).toEqual([{ type: "revoked", reason: "logout" }])
        expect(state.closedWith).toBe(4001)
        expect(registry.size).toBe(0)
      }).pipe(Effect.provide(RegistryLive))
  )

  it.effect(
    "is registered while it decides: a revocation routed during its first load closes it, never a hello (S47)",
    () =>
      Effect.gen(function* () {
        const store = fakeStore(snapshot(1, ["org:read"]))
        store.current.gate = yield* Deferred.make<void>()
        const registry = yield* SessionRegistry
        const { sent, state } = yield* open(store)
        yield* settle
        // The load is held back; the member is removed meanwhile and the router finds the session.
        const handles = [...registry.bySession("s1")]
        expect(handles).toHaveLength(1)
        handles[0]!.revoke("member_removed")
        yield* Deferred.succeed(store.current.gate, undefined)
        yield* settle
        expect(sent).toEqual([{ type: "revoked", reason: "member_removed" }])
        expect(state.closedWith).toBe(4001)
        expect(registry.size).toBe(0)
      }).pipe(Effect.provide(RegistryLive))
  )

  it.effect("coalesces a burst of 1,000 refreshes into a few recomputations ending at the final state", () =>
    Effect.gen(function* () {
      const actor = yield* start(snapshot(1, []))
      const gate = yield* Deferred.make<void>()
      actor.store.current.gate = gate
      const loadsBefore = actor.store.current.loads
      for (let i = 0; i < 1_000; i++) {
        actor.store.current.value = snapshot(2 + i, i % 2 === 0 ? ["docs:read"] : [])
        actor.handle().refresh()
        if (i === 0) yield* settle // the first recomputation is under way, held at the gate
      }
      actor.store.current.value = snapshot(1_100, ["docs:read", "docs:write"])
      actor.handle().refresh()
      yield* Deferred.succeed(gate, undefined)
      yield* nextInterval
      const loads = actor.store.current.loads - loadsBefore
      expect(loads).toBe(2)
      const diffs = actor.sent.filter((frame) => frame.type === "permissions")
      expect(diffs.at(-1)).toMatchObject({ revision: "1100" })
      // Applying every frame in order gives the final state.
      const held = new Set<string>()
      for (const frame of actor.sent) {
        if (frame.type === "hello") for (const p of frame.permissions as Array<string>) held.add(p)
        if (frame.type === "permissions") {
          for (const p of frame.added as Array<string>) held.add(p)
          for (const p of frame.removed as Array<string>) held.delete(p)
        }
      }
      expect([...held].sort()).toEqual(["docs:read", "docs:write"])
      yield* actor.close
    }).pipe(Effect.provide(RegistryLive))
  )

  it.effect("holds diffs back from a client over the soft limit and sends one fresh hello when it drains", () =>
    Effect.gen(function* () {
      const actor = yield* start(snapshot(1, []))
      actor.state.buffered = Limits.softBuffer + 1
      for (let i = 2; i <= 50; i++) {
        actor.store.current.value = snapshot(i, [`k${i}:read`])
        actor.handle().refresh()
        yield* nextInterval
      }
      expect(actor.sent.filter((frame) => frame.type === "permissions")).toHaveLength(0)
      actor.state.buffered = 0
      drained(actor.session)
      yield* settle
      expect(actor.sent.at(-1)).toMatchObject({ type: "hello", revision: "50", permissions: ["k50:read"] })
      expect(actor.state.open).toBe(true)
      // Caught up: the stuck timer is gone, and diffs flow again.
      yield* TestClock.adjust(Limits.stuckFor)
      yield* settle
      expect(actor.state.open).toBe(true)
      actor.store.current.value = snapshot(51, [])
      actor.handle().refresh()
      yield* nextInterval
      expect(actor.sent.at(-1)).toEqual({ type: "permissions", revision: "51", added: [], removed: ["k50:read"] })
      yield* actor.close
    }).pipe(Effect.provide(RegistryLive))
  )

  it.effect("closes a client over the hard limit with 4002", () =>
    Effect.gen(function* () {
      const actor = yield* start(snapshot(1, []))
      actor.state.buffered = Limits.hardBuffer + 1
      actor.store.current.value = snapshot(2, ["docs:read"])
      actor.handle().refresh()
      yield* settle
      expect(actor.state.closedWith).toBe(4002)
      expect(actor.registry.size).toBe(0)
    }).pipe(Effect.provide(RegistryLive))
  )

  it.effect("closes a client that stays behind past the time limit with 4002 (TestClock)", () =>
    Effect.gen(function* () {
      const actor = yield* start(snapshot(1, []))
      actor.state.buffered = Limits.softBuffer + 1
      actor.store.current.value = snapshot(2, ["docs:read"])
      actor.handle().refresh()
      yield* settle
      expect(actor.state.open).toBe(true)
      yield* TestClock.adjust(Duration.subtract(Limits.stuckFor, Duration.millis(1)))
      yield* settle
      expect(actor.state.open).toBe(true)
      yield* TestClock.adjust(Duration.millis(1))
      yield* settle
      expect(actor.state.closedWith).toBe(4002)
    }).pipe(Effect.provide(RegistryLive))
  )

  it.effect("sends revoked, closes with 4001 and leaves nothing in the registry", () =>
    Effect.gen(function* () {
      const actor = yield* start(snapshot(1, ["org:read"]))
      expect(actor.registry.size).toBe(1)
      actor.handle().revoke("logout")
      yield* settle
      expect(actor.sent.at(-1)).toEqual({ type: "revoked", reason: "logout" })
      expect(actor.state.closedWith).toBe(4001)
      expect(actor.registry.size).toBe(0)
      expect(actor.registry.indexEntries).toBe(0)
    }).pipe(Effect.provide(RegistryLive))
  )

  it.effect("revokes when a recomputation finds the user removed, and refuses to start for a frozen organization", () =>
    Effect.gen(function* () {
      const actor = yield* start(snapshot(1, ["org:read"]))
      actor.store.current.value = snapshot(2, [], { access: "not_member" })
      actor.handle().refresh()
      yield* settle
      expect(actor.sent.at(-1)).toEqual({ type: "revoked", reason: "member_removed" })

      const frozen = yield* start(snapshot(3, [], { access: "frozen" }))
      yield* settle
      expect(frozen.sent).toEqual([{ type: "revoked", reason: "organization_frozen" }])
      expect(frozen.registry.size).toBe(0)
    }).pipe(Effect.provide(RegistryLive))
  )

  it.effect("ends the session at its absolute expiry (TestClock)", () =>
    Effect.gen(function* () {
      const actor = yield* start(snapshot(1, ["org:read"]))
      const now = yield* TestClock.currentTimeMillis
      yield* TestClock.adjust(claims.sessionExpiresAt - now)
      yield* settle
      expect(actor.sent.at(-1)).toEqual({ type: "revoked", reason: "session_expired" })
      expect(actor.state.closedWith).toBe(4001)
    }).pipe(Effect.provide(RegistryLive))
  )

  it.effect("answers a resume at a revision the organization never reached with hello at the current one", () =>
    Effect.gen(function* () {
      const actor = yield* start(snapshot(7, ["org:read"]), "999")
      expect(actor.sent).toEqual([expect.objectContaining({ type: "hello", revision: "7", permissions: ["org:read"] })])
      expect(actor.state.open).toBe(true)
      expect(actor.registry.size).toBe(1)
      // A resume the organization has reached starts there as before.
      const resumed = yield* start(snapshot(7, ["org:read"]), "7")
      expect(resumed.sent[0]).toMatchObject({ type: "hello", revision: "7" })
      yield* actor.close
      yield* resumed.close
    }).pipe(Effect.provide(RegistryLive))
  )

  it.effect("answers an await for a revision never reached with revision_not_reached, and stays open", () =>
    Effect.gen(function* () {
      const actor = yield* start(snapshot(2, []))
      actor.receive(JSON.stringify({ type: "await", id: "w", revision: "99" }))
      yield* settle
      expect(actor.sent.at(-1)).toMatchObject({ type: "error", code: "revision_not_reached", id: "w" })
      expect(actor.state.open).toBe(true)
      yield* actor.close
    }).pipe(Effect.provide(RegistryLive))
  )

  it.effect("rate limits client messages and closes a client that keeps flooding with 4003", () =>
    Effect.gen(function* () {
      const actor = yield* start(snapshot(1, []))
      // The actor keeps up (it runs between batches), so the mailbox never refuses a frame: what
      // stops the client is the message rate, not the mailbox.
      let refused = 0
      for (let i = 0; i < Limits.floodClose + Limits.burst + 50; i++) {
        if (!actor.receive('{"type":"ping"}')) refused += 1
        if (i % 50 === 49) yield* settle
      }
      yield* settle
      expect(refused).toBe(0)
      // No time passed (TestClock): exactly the burst was answered, then every message was dropped
      // with rate_limited until the last drop closed the socket.
      expect(actor.sent.filter((frame) => frame.type === "pong")).toHaveLength(Limits.burst)
      expect(actor.sent.filter((frame) => frame.code === "rate_limited")).toHaveLength(Limits.floodClose - 1)
      expect(actor.state.closedWith).toBe(4003)
    }).pipe(Effect.provide(RegistryLive))
  )

  it.effect("refills the message budget at the sustained rate (TestClock)", () =>
    Effect.gen(function* () {
      const actor = yield* start(snapshot(1, []))
      const ping = () => actor.receive('{"type":"ping"}')
      for (let i = 0; i < Limits.burst + 1; i++) ping()
      yield* settle
      expect(actor.sent.filter((frame) => frame.type === "pong")).toHaveLength(Limits.burst)
      expect(actor.sent.at(-1)).toMatchObject({ code: "rate_limited" })
      // One second later, `messagesPerSecond` more are allowed, and no more.
      yield* TestClock.adjust(Duration.seconds(1))
      for (let i = 0; i < LiveLimits.messagesPerSecond + 1; i++) ping()
      yield* settle
      expect(actor.sent.filter((frame) => frame.type === "pong")).toHaveLength(
        Limits.burst + LiveLimits.messagesPerSecond
      )
      expect(actor.sent.filter((frame) => frame.code === "rate_limited")).toHaveLength(2)
      expect(actor.state.open).toBe(true)
      yield* actor.close
    }).pipe(Effect.provide(RegistryLive))
  )

  it.effect(
    "starts and stops 10,000 actors without leaving anything in the registry",
    () =>
      Effect.gen(function* () {
        const registry = yield* SessionRegistry
        const store = fakeStore(snapshot(1, ["org:read"]))
        const actors = yield* Effect.forEach(
          Array.from({ length: 10_000 }, (_, i) => i),
          (i) => open(store, { connectionId: i, claims: { ...claims, sessionId: `s${i}`, userId: `u${i % 100}` } })
        )
        // Bounded by turns, not by time: each turn lets every started actor run until it waits.
        for (let turn = 0; turn < 1_000 && registry.counters.opened < 10_000; turn++) yield* Effect.yieldNow()
        expect(registry.size).toBe(10_000)
        expect(registry.counters.opened).toBe(10_000)
        // Open and idle: no fiber left running, one expiry each on the timer wheel.
        expect(registry.actorsRunning).toBe(0)
        expect(registry.timers).toBe(10_000)
        for (const actor of actors) socketClosed(actor.session)
        expect(registry.timers).toBe(0)
        expect(registry.size).toBe(0)
        expect(registry.indexEntries).toBe(0)
      }).pipe(Effect.provide(RegistryLive)),
    120_000
  )

  it.effect("drops client frames beyond the mailbox, but a revocation still gets through", () =>
    Effect.gen(function* () {
      const store = fakeStore(snapshot(1, ["org:read"]))
      store.current.gate = yield* Deferred.make<void>()
      const registry = yield* SessionRegistry
      // The actor is busy opening (its load held back), so the frames wait in its mailbox.
      const actor = yield* open(store)
      yield* settle
      let accepted = 0
      for (let i = 0; i < Limits.mailbox + 10; i++) if (actor.receive('{"type":"ping"}')) accepted++
      expect(accepted).toBe(Limits.mailbox)
      for (const handle of registry.bySession("s1")) handle.revoke("logout")
      yield* Deferred.succeed(store.current.gate, undefined)
      yield* settle
      expect(actor.sent).toEqual([{ type: "revoked", reason: "logout" }])
      expect(registry.size).toBe(0)
    }).pipe(Effect.provide(RegistryLive))
  )
})
