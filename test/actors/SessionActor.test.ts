import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber, Layer, Queue, TestClock } from "effect"
import type { LiveSocket } from "../../src/actors/SessionActor.ts"
import { Limits, makeMailbox, offerFrame, runSessionActor } from "../../src/actors/SessionActor.ts"
import { type Registry, SessionRegistry } from "../../src/actors/SessionRegistry.ts"
import { PermissionStore, type SessionSnapshot } from "../../src/services/PermissionStore.ts"

const claims = {
  userId: "u1",
  sessionId: "s1",
  organizationId: "o1",
  sessionExpiresAt: Date.now() + 3_600_000
}

const snapshot = (
  revision: number,
  permissions: Array<string>,
  extra: Partial<SessionSnapshot> = {}
): SessionSnapshot => ({
  access: "ok",
  revision: String(revision),
  permissions,
  scoped: {},
  scopedDenied: {},
  roles: ["member"],
  roleIds: ["r1"],
  ...extra
})

/** A socket that records what is sent, with a send buffer the test sets. */
const fakeSocket = () => {
  const sent: Array<Record<string, unknown>> = []
  const state = { open: true, buffered: 0, closedWith: undefined as number | undefined }
  const socket: LiveSocket = {
    isOpen: () => state.open,
    send: (text) => {
      sent.push(JSON.parse(text))
    },
    bufferedAmount: () => state.buffered,
    close: (code) => {
      state.open = false
      state.closedWith = code
    }
  }
  return { socket, sent, state }
}

/** A permission store whose answers the test sets, counting the loads; `gate` can hold loads back. */
const fakeStore = (initial: SessionSnapshot) => {
  const current = { value: initial, loads: 0, gate: undefined as Deferred.Deferred<void> | undefined }
  const layer = Layer.succeed(
    PermissionStore,
    PermissionStore.of({
      session: () =>
        Effect.gen(function* () {
          current.loads += 1
          if (current.gate !== undefined) yield* Deferred.await(current.gate)
          return current.value
        }),
      check: ({ permission }) =>
        Effect.succeed({
          member: true,
          allowed: current.value.permissions.includes(permission),
          reason: "test",
          revision: current.value.revision
        }),
      checkMany: () => Effect.die("unused"),
      explain: () => Effect.die("unused"),
      effective: () => Effect.die("unused"),
      notHeldBy: () => Effect.die("unused")
    })
  )
  return { current, layer }
}

const start = (initial: SessionSnapshot) =>
  Effect.gen(function* () {
    const { socket, sent, state } = fakeSocket()
    const store = fakeStore(initial)
    const registry = yield* SessionRegistry
    const mailbox = yield* makeMailbox
    const fiber = yield* Effect.fork(
      runSessionActor({ connectionId: 1, socket, claims, mailbox, resumeAt: undefined }).pipe(
        Effect.provide(store.layer)
      )
    )
    // Let it load and register.
    for (let i = 0; i < 100 && registry.size === 0 && state.open; i++) yield* Effect.yieldNow()
    for (let i = 0; i < 20 && registry.size === 0 && state.open; i++) yield* Effect.sleep(Duration.millis(1))
    const handle = () => [...registry.bySession("s1")][0]!
    return { socket, sent, state, store, registry: registry as Registry, mailbox, fiber, handle }
  })

const settle = Effect.gen(function* () {
  for (let i = 0; i < 10; i++) yield* Effect.yieldNow()
})

const RegistryLive = SessionRegistry.layer

describe("SessionActor", () => {
  it.live("says hello, pushes a diff only when something changed, and never goes back a revision", () =>
    Effect.gen(function* () {
      const actor = yield* start(snapshot(3, ["org:read"]))
      expect(actor.sent[0]).toMatchObject({
        type: "hello",
        revision: "3",
        permissions: ["org:read"],
        roles: ["member"]
      })

      actor.store.current.value = snapshot(4, ["org:read", "docs:read"])
      actor.handle().refresh()
      yield* Effect.sleep(Duration.millis(130))
      expect(actor.sent[1]).toEqual({ type: "permissions", revision: "4", added: ["docs:read"], removed: [] })

      // Nothing changed for this session at revision 5: no frame, but an await sees 5.
      actor.store.current.value = snapshot(5, ["org:read", "docs:read"])
      actor.handle().refresh()
      yield* Effect.sleep(Duration.millis(130))
      expect(actor.sent).toHaveLength(2)
      offerFrame(actor.mailbox, { _tag: "Frame", text: JSON.stringify({ type: "await", id: "a", revision: "5" }) })
      yield* Effect.sleep(Duration.millis(5))
      expect(actor.sent[2]).toEqual({ type: "awaited", id: "a", revision: "5" })

      // An older snapshot (a slow read racing a newer one) is ignored.
      actor.store.current.value = snapshot(4, ["org:read"])
      actor.handle().refresh()
      yield* Effect.sleep(Duration.millis(130))
      expect(actor.sent).toHaveLength(3)
      yield* Fiber.interrupt(actor.fiber)
    }).pipe(Effect.provide(RegistryLive))
  )

  it.live("sends resource-scoped keys and scoped denies in hello and their changes in diffs", () =>
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
      yield* Effect.sleep(Duration.millis(130))
      expect(actor.sent[1]).toEqual({
        type: "permissions",
        revision: "2",
        added: [],
        removed: [],
        scopedDeniedAdded: { "project/3": ["docs:read"] },
        scopedDeniedRemoved: { "project/2": ["docs:read"] }
      })
      yield* Fiber.interrupt(actor.fiber)
    }).pipe(Effect.provide(RegistryLive))
  )

  it.live("coalesces a burst of 1,000 refreshes into a few recomputations ending at the final state", () =>
    Effect.gen(function* () {
      const actor = yield* start(snapshot(1, []))
      const gate = yield* Deferred.make<void>()
      actor.store.current.gate = gate
      const loadsBefore = actor.store.current.loads
      for (let i = 0; i < 1_000; i++) {
        actor.store.current.value = snapshot(2 + i, i % 2 === 0 ? ["docs:read"] : [])
        actor.handle().refresh()
        if (i === 0) yield* Effect.sleep(Duration.millis(2))
      }
      actor.store.current.value = snapshot(1_100, ["docs:read", "docs:write"])
      actor.handle().refresh()
      yield* Deferred.succeed(gate, undefined)
      yield* Effect.sleep(Duration.millis(20))
      const loads = actor.store.current.loads - loadsBefore
      expect(loads).toBeGreaterThanOrEqual(1)
      expect(loads).toBeLessThanOrEqual(3)
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
      yield* Fiber.interrupt(actor.fiber)
    }).pipe(Effect.provide(RegistryLive))
  )

  it.live("holds diffs back from a client over the soft limit and sends one fresh hello when it drains", () =>
    Effect.gen(function* () {
      const actor = yield* start(snapshot(1, []))
      actor.state.buffered = Limits.softBuffer + 1
      for (let i = 2; i <= 50; i++) {
        actor.store.current.value = snapshot(i, [`k${i}:read`])
        actor.handle().refresh()
        yield* Effect.sleep(Duration.millis(1))
      }
      expect(actor.sent.filter((frame) => frame.type === "permissions")).toHaveLength(0)
      actor.state.buffered = 0
      actor.mailbox.unsafeOffer({ _tag: "Drain" })
      yield* Effect.sleep(Duration.millis(5))
      expect(actor.sent.at(-1)).toMatchObject({ type: "hello", revision: "50", permissions: ["k50:read"] })
      expect(actor.state.open).toBe(true)
      yield* Fiber.interrupt(actor.fiber)
    }).pipe(Effect.provide(RegistryLive))
  )

  it.live("closes a client over the hard limit with 4002", () =>
    Effect.gen(function* () {
      const actor = yield* start(snapshot(1, []))
      actor.state.buffered = Limits.hardBuffer + 1
      actor.store.current.value = snapshot(2, ["docs:read"])
      actor.handle().refresh()
      yield* Fiber.join(actor.fiber)
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
      yield* TestClock.adjust(Limits.stuckFor)
      yield* settle
      expect(actor.state.closedWith).toBe(4002)
    }).pipe(Effect.provide(RegistryLive))
  )

  it.live("sends revoked, closes with 4001 and leaves nothing in the registry", () =>
    Effect.gen(function* () {
      const actor = yield* start(snapshot(1, ["org:read"]))
      expect(actor.registry.size).toBe(1)
      actor.handle().revoke("logout")
      yield* Fiber.join(actor.fiber)
      expect(actor.sent.at(-1)).toEqual({ type: "revoked", reason: "logout" })
      expect(actor.state.closedWith).toBe(4001)
      expect(actor.registry.size).toBe(0)
      expect(actor.registry.indexEntries).toBe(0)
    }).pipe(Effect.provide(RegistryLive))
  )

  it.live("revokes when a recomputation finds the user removed, and refuses to start for a frozen organization", () =>
    Effect.gen(function* () {
      const actor = yield* start(snapshot(1, ["org:read"]))
      actor.store.current.value = snapshot(2, [], { access: "not_member" })
      actor.handle().refresh()
      yield* Fiber.join(actor.fiber)
      expect(actor.sent.at(-1)).toEqual({ type: "revoked", reason: "member_removed" })

      const frozen = yield* start(snapshot(3, [], { access: "frozen" }))
      yield* Fiber.join(frozen.fiber)
      expect(frozen.sent).toEqual([{ type: "revoked", reason: "organization_frozen" }])
      expect(frozen.registry.size).toBe(0)
    }).pipe(Effect.provide(RegistryLive))
  )

  it.live("rate limits client messages and closes a client that keeps flooding with 4003", () =>
    Effect.gen(function* () {
      const actor = yield* start(snapshot(1, []))
      let refused = 0
      for (let i = 0; i < Limits.floodClose + Limits.burst + 50; i++) {
        if (!offerFrame(actor.mailbox, { _tag: "Frame", text: '{"type":"ping"}' })) refused += 1
        if (i % 100 === 0) yield* Effect.yieldNow()
      }
      yield* Fiber.join(actor.fiber)
      expect(actor.sent.some((frame) => frame.code === "rate_limited")).toBe(true)
      expect(actor.state.closedWith).toBe(4003)
      expect(refused).toBeGreaterThanOrEqual(0)
    }).pipe(Effect.provide(RegistryLive))
  )

  it.live("starts and stops 10,000 actors without leaving anything in the registry", () =>
    Effect.gen(function* () {
      const registry = yield* SessionRegistry
      const store = fakeStore(snapshot(1, ["org:read"]))
      const fibers = yield* Effect.forEach(
        Array.from({ length: 10_000 }, (_, i) => i),
        (i) =>
          Effect.gen(function* () {
            const { socket } = fakeSocket()
            const mailbox = yield* makeMailbox
            return yield* Effect.fork(
              runSessionActor({
                connectionId: i,
                socket,
                claims: { ...claims, sessionId: `s${i}`, userId: `u${i % 100}` },
                mailbox,
                resumeAt: undefined
              }).pipe(Effect.provide(store.layer))
            )
          })
      )
      for (let i = 0; i < 200 && registry.size < 10_000; i++) yield* Effect.sleep(Duration.millis(5))
      expect(registry.size).toBe(10_000)
      yield* Fiber.interruptAll(fibers)
      expect(registry.size).toBe(0)
      expect(registry.indexEntries).toBe(0)
    }).pipe(Effect.provide(RegistryLive))
  )

  it.live("drops client frames beyond the mailbox but never the actor's own signals", () =>
    Effect.gen(function* () {
      const mailbox = yield* makeMailbox
      let accepted = 0
      for (let i = 0; i < Limits.mailbox + 10; i++) if (offerFrame(mailbox, { _tag: "Frame", text: "{}" })) accepted++
      expect(accepted).toBe(Limits.mailbox)
      expect(mailbox.unsafeOffer({ _tag: "Wake" })).toBe(true)
      expect(yield* Queue.size(mailbox)).toBe(Limits.mailbox + 1)
    })
  )
})
