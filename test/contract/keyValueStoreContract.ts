import { randomUUID } from "node:crypto"
import { expect, layer } from "@effect/vitest"
import { Effect, type Layer, Option } from "effect"
import { KeyValueStore } from "../../src/services/KeyValueStore.ts"

const fresh = (label: string) => `${label}:${randomUUID()}`

/** What every KeyValueStore implementation promises its callers; runs on the real clock. */
export const keyValueStoreContract = (name: string, implementation: Layer.Layer<KeyValueStore, unknown>) =>
  layer(implementation, { excludeTestServices: true })(`KeyValueStore contract (${name})`, (it) => {
    it.effect("get of a missing key is None", () =>
      Effect.gen(function* () {
        const store = yield* KeyValueStore
        expect(yield* store.get(fresh("missing"))).toEqual(Option.none())
      })
    )

    it.effect("set stores a value that get returns, and a second set replaces it", () =>
      Effect.gen(function* () {
        const store = yield* KeyValueStore
        const key = fresh("set")
        yield* store.set(key, 'ünïcödé ✓ {"json":true}', "1 minute")
        expect(yield* store.get(key)).toEqual(Option.some('ünïcödé ✓ {"json":true}'))
        yield* store.set(key, "second", "1 minute")
        expect(yield* store.get(key)).toEqual(Option.some("second"))
      })
    )

    it.effect("a value expires after its time to live, and then counts as absent", () =>
      Effect.gen(function* () {
        const store = yield* KeyValueStore
        const key = fresh("ttl")
        yield* store.set(key, "short", "200 millis")
        expect(yield* store.get(key)).toEqual(Option.some("short"))
        yield* Effect.sleep("400 millis")
        expect(yield* store.get(key)).toEqual(Option.none())
        expect(yield* store.setIfAbsent(key, "again", "1 minute")).toBe(true)
      })
    )

    it.effect("setIfAbsent sets only the first time and keeps the first value", () =>
      Effect.gen(function* () {
        const store = yield* KeyValueStore
        const key = fresh("nx")
        expect(yield* store.setIfAbsent(key, "first", "1 minute")).toBe(true)
        expect(yield* store.setIfAbsent(key, "second", "1 minute")).toBe(false)
        expect(yield* store.get(key)).toEqual(Option.some("first"))
      })
    )

    it.effect("consume returns the value once, then None", () =>
      Effect.gen(function* () {
        const store = yield* KeyValueStore
        const key = fresh("consume")
        yield* store.set(key, "ticket", "1 minute")
        expect(yield* store.consume(key)).toEqual(Option.some("ticket"))
        expect(yield* store.consume(key)).toEqual(Option.none())
        expect(yield* store.get(key)).toEqual(Option.none())
      })
    )

    it.effect("of 20 concurrent consumes of one key exactly one gets the value", () =>
      Effect.gen(function* () {
        const store = yield* KeyValueStore
        const key = fresh("race")
        yield* store.set(key, "ticket", "1 minute")
        const results = yield* Effect.all(
          Array.from({ length: 20 }, () => store.consume(key)),
          {
            concurrency: "unbounded"
          }
        )
        expect(results.filter(Option.isSome)).toEqual([Option.some("ticket")])
      })
    )

    it.effect("compareAndSet replaces the value only when it still equals the expected one", () =>
      Effect.gen(function* () {
        const store = yield* KeyValueStore
        const key = fresh("cas")
        expect(yield* store.compareAndSet(key, "anything", "new", "1 minute")).toBe(false)
        expect(yield* store.get(key)).toEqual(Option.none())

        yield* store.set(key, "v1", "1 minute")
        expect(yield* store.compareAndSet(key, "v0", "v2", "1 minute")).toBe(false)
        expect(yield* store.get(key)).toEqual(Option.some("v1"))
        expect(yield* store.compareAndSet(key, "v1", "v2", "1 minute")).toBe(true)
        expect(yield* store.get(key)).toEqual(Option.some("v2"))
        expect(yield* store.compareAndSet(key, "v1", "v3", "1 minute")).toBe(false)
      })
    )

    it.effect("compareAndDelete deletes only when the value equals the expected one", () =>
      Effect.gen(function* () {
        const store = yield* KeyValueStore
        const key = fresh("cad")
        expect(yield* store.compareAndDelete(key, "anything")).toBe(false)
        yield* store.set(key, "mine", "1 minute")
        expect(yield* store.compareAndDelete(key, "theirs")).toBe(false)
        expect(yield* store.get(key)).toEqual(Option.some("mine"))
        expect(yield* store.compareAndDelete(key, "mine")).toBe(true)
        expect(yield* store.get(key)).toEqual(Option.none())
      })
    )

    it.effect("increment counts 1, 2, 3 and the count reads back with get", () =>
      Effect.gen(function* () {
        const store = yield* KeyValueStore
        const key = fresh("count")
        const counts = yield* Effect.all([1, 2, 3].map(() => store.increment(key, "1 minute")))
        expect(counts).toEqual([1, 2, 3])
        expect(yield* store.get(key)).toEqual(Option.some("3"))
      })
    )

    it.effect("the time to live of a counter starts at its first increment and is not extended", () =>
      Effect.gen(function* () {
        const store = yield* KeyValueStore
        const key = fresh("window")
        expect(yield* store.increment(key, "400 millis")).toBe(1)
        yield* Effect.sleep("250 millis")
        expect(yield* store.increment(key, "400 millis")).toBe(2)
        // Past the first increment's expiry, before a refreshed one would be.
        yield* Effect.sleep("250 millis")
        expect(yield* store.increment(key, "400 millis")).toBe(1)
      })
    )

    it.effect("delete removes a key, and deleting a missing key succeeds", () =>
      Effect.gen(function* () {
        const store = yield* KeyValueStore
        const key = fresh("delete")
        yield* store.set(key, "value", "1 minute")
        yield* store.delete(key)
        expect(yield* store.get(key)).toEqual(Option.none())
        yield* store.delete(key)
      })
    )
  })
