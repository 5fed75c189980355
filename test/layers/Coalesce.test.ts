import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import { batched, coalesced } from "../../src/layers/Coalesce.ts"

/** A read whose calls are recorded and which answers only when the test lets it. */
const gatedRead = () => {
  const calls: Array<{ readonly key: string; readonly gate: Deferred.Deferred<void> }> = []
  let value = 0
  const read = (key: string) =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      calls.push({ key, gate })
      yield* Deferred.await(gate)
      value += 1
      return `${key}:${value}`
    })
  return { calls, read }
}

const waitFor = (condition: () => boolean) =>
  Effect.gen(function* () {
    while (!condition()) yield* Effect.yieldNow()
  })

describe("coalesced reads", () => {
  it.effect("callers arriving together share one read; one arriving during it gets a read that starts after", () =>
    Effect.gen(function* () {
      const { calls, read } = gatedRead()
      const latest = coalesced(read)
      const first = yield* Effect.all([latest("org"), latest("org"), latest("org")], { concurrency: 3 }).pipe(
        Effect.fork
      )
      yield* waitFor(() => calls.length === 1)
      // The read is under way: a new caller must not join it (it may have read before this caller asked).
      const late = yield* Effect.fork(latest("org"))
      const later = yield* Effect.fork(latest("org"))
      yield* Deferred.succeed(calls[0]!.gate, undefined)
      expect(yield* Fiber.join(first)).toEqual(["org:1", "org:1", "org:1"])
      yield* waitFor(() => calls.length === 2)
      yield* Deferred.succeed(calls[1]!.gate, undefined)
      expect([yield* Fiber.join(late), yield* Fiber.join(later)]).toEqual(["org:2", "org:2"])
      expect(calls.map((call) => call.key)).toEqual(["org", "org"])
    })
  )

  it.effect("reads of different keys do not wait for each other, and a failure reaches only its callers", () =>
    Effect.gen(function* () {
      const latest = coalesced((key: string) => (key === "bad" ? Effect.fail("no such key") : Effect.succeed(key)))
      const [good, bad] = yield* Effect.all([latest("good"), Effect.flip(latest("bad"))], { concurrency: 2 })
      expect([good, bad]).toEqual(["good", "no such key"])
    })
  )
})

describe("batched reads", () => {
  it.effect("keys asked for together are read in one call and each caller gets its own value", () =>
    Effect.gen(function* () {
      const batches: Array<ReadonlyArray<string>> = []
      const get = batched((keys: ReadonlyArray<string>) =>
        Effect.sync(() => {
          batches.push(keys)
          return keys.map((key) => key.toUpperCase())
        })
      )
      const values = yield* Effect.all(["a", "b", "c"].map(get), { concurrency: 3 })
      expect(values).toEqual(["A", "B", "C"])
      expect(batches).toEqual([["a", "b", "c"]])
      expect(yield* get("d")).toBe("D")
      expect(batches).toHaveLength(2)
    })
  )

  it.effect("a failed batch fails each of its callers, and the next batch reads again", () =>
    Effect.gen(function* () {
      let down = true
      const get = batched((keys: ReadonlyArray<string>) => (down ? Effect.fail("down") : Effect.succeed(keys)))
      const failed = yield* Effect.all([Effect.flip(get("a")), Effect.flip(get("b"))], { concurrency: 2 })
      expect(failed).toEqual(["down", "down"])
      down = false
      expect(yield* get("c")).toBe("c")
    })
  )
})
