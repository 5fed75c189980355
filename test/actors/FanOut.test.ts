import { describe, expect, it } from "@effect/vitest"
import { Effect, Runtime, TestClock } from "effect"
import { Deadlines } from "../../src/actors/Deadlines.ts"
import { SessionRegistry } from "../../src/actors/SessionRegistry.ts"
import { fakeStore, nextInterval, open, RegistryLive, settle, snapshot } from "../support/LiveActors.ts"

const USERS = 30
const PER_USER = 10

/** USERS users with PER_USER sessions each, all opened (hello sent). */
const openMany = (store: ReturnType<typeof fakeStore>, forks: { count: number }) =>
  Effect.gen(function* () {
    const registry = yield* SessionRegistry
    const actors = yield* Effect.forEach(
      Array.from({ length: USERS * PER_USER }, (_, i) => i),
      (i) =>
        open(store, {
          connectionId: i,
          claims: { userId: `u${i % USERS}`, sessionId: `s${i}`, organizationId: "o1", sessionExpiresAt: 3_600_000 },
          forks
        })
    )
    for (let turn = 0; turn < 100 && registry.counters.opened < actors.length; turn++) yield* settle
    expect(registry.counters.opened).toBe(actors.length)
    return actors
  })

describe("FanOut", () => {
  it.effect(
    "one change to 300 sessions of 30 users: one load, one shared set, the same frame to every socket, no actor woken",
    () =>
      Effect.gen(function* () {
        const registry = yield* SessionRegistry
        const store = fakeStore(snapshot(1, ["org:read"]))
        const forks = { count: 0 }
        const actors = yield* openMany(store, forks)
        // Users holding the same keys at the same revision hold one set.
        const held = new Set(actors.map((actor) => actor.session.held))
        expect(held.size).toBe(1)

        store.current.value = snapshot(2, ["docs:read", "org:read"])
        const loads = store.current.loads
        const forked = forks.count
        for (const actor of actors) actor.session.refresh()
        yield* settle
        expect(store.current.loads - loads).toBe(1)
        expect(forks.count - forked).toBe(0)
        expect(registry.actorsRunning).toBe(0)
        for (const actor of actors) {
          expect(actor.sent.at(-1)).toEqual({ type: "permissions", revision: "2", added: ["docs:read"], removed: [] })
        }
        expect(new Set(actors.map((actor) => actor.session.held)).size).toBe(1)
        expect(registry.counters.pushes).toBe(actors.length)
      }).pipe(Effect.provide(RegistryLive))
  )

  it.effect("each user gets their own change; users whose sets stay equal keep sharing one", () =>
    Effect.gen(function* () {
      const store = fakeStore(snapshot(1, ["org:read"]))
      const actors = yield* openMany(store, { count: 0 })
      // u0 loses org:read, u1 gains docs:write, the others only move to revision 2.
      store.current.value = snapshot(2, ["org:read"])
      store.current.byUser.set("u0", snapshot(2, []))
      store.current.byUser.set("u1", snapshot(2, ["docs:write", "org:read"]))
      for (const actor of actors) actor.session.refresh()
      yield* settle
      const of = (userId: string) => actors.filter((actor) => actor.session.userId === userId)
      for (const actor of of("u0")) {
        expect(actor.sent.at(-1)).toEqual({ type: "permissions", revision: "2", added: [], removed: ["org:read"] })
      }
      for (const actor of of("u1")) {
        expect(actor.sent.at(-1)).toEqual({ type: "permissions", revision: "2", added: ["docs:write"], removed: [] })
      }
      // Nothing changed for the others: no frame, but they hold revision 2, all of them one set.
      const others = actors.filter((actor) => actor.session.userId !== "u0" && actor.session.userId !== "u1")
      for (const actor of others) expect(actor.sent.map((frame) => frame.type)).toEqual(["hello"])
      expect(new Set(others.map((actor) => actor.session.held)).size).toBe(1)
      expect(others[0]!.session.held.revision).toBe(2n)
    }).pipe(Effect.provide(RegistryLive))
  )

  it.effect("paces per user: a second change within the interval waits for its end, the first goes at once", () =>
    Effect.gen(function* () {
      const store = fakeStore(snapshot(1, []))
      const actors = yield* openMany(store, { count: 0 })
      const [first] = actors
      const loads = store.current.loads
      store.current.value = snapshot(2, ["a:read"])
      first!.session.refresh()
      yield* settle
      expect(store.current.loads - loads).toBe(1)
      store.current.value = snapshot(3, ["b:read"])
      first!.session.refresh()
      first!.session.refresh()
      yield* settle
      expect(store.current.loads - loads).toBe(1)
      yield* nextInterval
      expect(store.current.loads - loads).toBe(2)
      expect(first!.sent.at(-1)).toEqual({ type: "permissions", revision: "3", added: ["b:read"], removed: ["a:read"] })
    }).pipe(Effect.provide(RegistryLive))
  )
})

describe("Deadlines", () => {
  it.effect("serves each item at its time, never before; a later add replaces, a remove cancels (TestClock)", () =>
    Effect.gen(function* () {
      const due: Array<string> = []
      const runFork = Runtime.runFork(yield* Effect.runtime<never>())
      const wheel = new Deadlines<string>(100, yield* Effect.clock, runFork, (item) => due.push(item))
      wheel.add("a", 1_000)
      wheel.add("b", 250)
      wheel.add("c", 5_000)
      wheel.add("c", 2_000)
      wheel.add("gone", 300)
      wheel.remove("gone")
      yield* TestClock.adjust(249)
      yield* settle
      expect(due).toEqual([])
      yield* TestClock.adjust(51)
      yield* settle
      expect(due).toEqual(["b"])
      yield* TestClock.adjust(700)
      yield* settle
      expect(due).toEqual(["b", "a"])
      yield* TestClock.adjust(1_000)
      yield* settle
      expect(due).toEqual(["b", "a", "c"])
      expect(wheel.size).toBe(0)
    })
  )
})
