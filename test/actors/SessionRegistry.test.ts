import { describe, expect, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Exit, Fiber } from "effect"
import { Registry } from "../../src/actors/SessionRegistry.ts"

/** A load the test releases by hand, counting how often it started. */
const gatedLoad = () =>
  Effect.gen(function* () {
    const gate = yield* Deferred.make<void>()
    const counter = { started: 0 }
    const load = Effect.gen(function* () {
      counter.started += 1
      const n = counter.started
      yield* Deferred.await(gate)
      return `load ${n}`
    })
    return { gate, counter, load }
  })

/** Holds every recomputation permit, so loads wait; returns the release. */
const holdPermits = (registry: Registry) =>
  Effect.gen(function* () {
    const release = yield* Deferred.make<void>()
    const holder = yield* Effect.fork(registry.recomputations.withPermits(4)(Deferred.await(release)))
    yield* settle
    return Deferred.succeed(release, undefined).pipe(Effect.zipRight(Fiber.join(holder)))
  })

/** Lets the forked fibers run until they wait. */
const settle = Effect.forEach(Array.from({ length: 20 }), () => Effect.yieldNow(), { discard: true })

describe("Registry.shared", () => {
  it.effect("gives callers asking for one key while it waits for a permit one load", () =>
    Effect.gen(function* () {
      const registry = new Registry(Effect.runFork, Clock.make())
      const { gate, counter, load } = yield* gatedLoad()
      const release = yield* holdPermits(registry)
      const callers = yield* Effect.forEach(Array.from({ length: 50 }), () =>
        Effect.fork(registry.shared("o/u/", load))
      )
      yield* settle
      expect(counter.started).toBe(0)
      yield* release
      yield* Deferred.succeed(gate, undefined)
      const results = yield* Effect.forEach(callers, Fiber.join)
      expect(counter.started).toBe(1)
      expect(registry.counters.loads).toBe(1)
      expect(new Set(results)).toEqual(new Set(["load 1"]))
    })
  )

  it.effect("never hands a caller a load that started reading before it asked", () =>
    Effect.gen(function* () {
      const registry = new Registry(Effect.runFork, Clock.make())
      const { gate, counter, load } = yield* gatedLoad()
      const early = yield* Effect.fork(registry.shared("o/u/", load))
      yield* settle
      expect(counter.started).toBe(1) // holding a permit, reading
      const late = yield* Effect.fork(registry.shared("o/u/", load))
      yield* settle
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(early)).toBe("load 1")
      expect(yield* Fiber.join(late)).toBe("load 2")
    })
  )

  it.effect("keeps different keys apart and shares failures with the callers of the same load", () =>
    Effect.gen(function* () {
      const registry = new Registry(Effect.runFork, Clock.make())
      const release = yield* holdPermits(registry)
      const a = yield* Effect.fork(registry.shared("o/a/", Effect.fail("down" as const)))
      const a2 = yield* Effect.fork(registry.shared("o/a/", Effect.succeed("never run")))
      const b = yield* Effect.fork(registry.shared("o/b/", Effect.succeed("b")))
      yield* settle
      yield* release
      expect(yield* Fiber.await(a)).toEqual(Exit.fail("down"))
      expect(yield* Fiber.await(a2)).toEqual(Exit.fail("down"))
      expect(yield* Fiber.join(b)).toBe("b")
      expect(registry.counters.loads).toBe(2)
    })
  )

  it.effect("finishes the load for the others when the caller that started it goes away", () =>
    Effect.gen(function* () {
      const registry = new Registry(Effect.runFork, Clock.make())
      const { gate, load } = yield* gatedLoad()
      const release = yield* holdPermits(registry)
      const first = yield* Effect.fork(registry.shared("o/u/", load))
      const second = yield* Effect.fork(registry.shared("o/u/", load))
      yield* settle
      yield* Fiber.interrupt(first)
      yield* release
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(second)).toBe("load 1")
    })
  )
})
