import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect } from "effect"
import { fakeStore, open, RegistryLive, settle, snapshot } from "../support/LiveActors.ts"

const check = (id: string, permission: string) => JSON.stringify({ type: "check", id, permission })

/** A session opened on `store`, its hello sent. */
const opened = (store: ReturnType<typeof fakeStore>, forks: { count: number }) =>
  Effect.gen(function* () {
    const actor = yield* open(store, { forks })
    yield* settle
    expect(actor.sent[0]).toMatchObject({ type: "hello" })
    return actor
  })

describe("checks over a live socket", () => {
  it.effect("a check this node's memory decides is answered on the caller's stack: no fiber starts", () =>
    Effect.gen(function* () {
      const store = fakeStore(snapshot(3, ["docs:read"]))
      store.current.fromMemory = true
      const forks = { count: 0 }
      const actor = yield* opened(store, forks)
      const before = forks.count
      actor.receive(check("a", "docs:read"))
      actor.receive(check("b", "docs:write"))
      actor.receive('{"type":"ping"}')
      // No settle: the answers are there as soon as the frames are handed over.
      expect(actor.sent.slice(1)).toEqual([
        { type: "check.result", id: "a", allowed: true, reason: "test, from memory", revision: "3" },
        { type: "check.result", id: "b", allowed: false, reason: "test, from memory", revision: "3" },
        { type: "pong" }
      ])
      expect(forks.count).toBe(before)
    }).pipe(Effect.provide(RegistryLive))
  )

  it.effect("a check memory cannot decide goes to the actor's fiber and is answered by the store", () =>
    Effect.gen(function* () {
      const store = fakeStore(snapshot(3, ["docs:read"]))
      const forks = { count: 0 }
      const actor = yield* opened(store, forks)
      const before = forks.count
      actor.receive(check("a", "docs:read"))
      yield* settle
      expect(actor.sent.at(-1)).toEqual({ type: "check.result", id: "a", allowed: true, reason: "test", revision: "3" })
      expect(forks.count).toBe(before + 1)
    }).pipe(Effect.provide(RegistryLive))
  )

  it.effect("answers stay in the order the frames came: a check behind a waiting await waits its turn", () =>
    Effect.gen(function* () {
      const store = fakeStore(snapshot(3, ["docs:read"]))
      const actor = yield* opened(store, { count: 0 })
      store.current.fromMemory = true
      store.current.gate = yield* Deferred.make<void>()
      // The await needs a load (held at the gate); the check behind it could be answered from memory.
      actor.receive(JSON.stringify({ type: "await", id: "w", revision: "3" }))
      actor.receive(JSON.stringify({ type: "await", id: "x", revision: "4" }))
      actor.receive(check("c", "docs:read"))
      yield* settle
      expect(actor.sent.map((frame) => frame.id ?? frame.type)).toEqual(["hello", "w"])
      store.current.value = snapshot(4, ["docs:read"])
      yield* Deferred.succeed(store.current.gate, undefined)
      yield* settle
      expect(actor.sent.map((frame) => frame.id ?? frame.type)).toEqual(["hello", "w", "x", "c"])
    }).pipe(Effect.provide(RegistryLive))
  )
})
