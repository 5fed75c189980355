import { randomUUID } from "node:crypto"
import { expect, layer } from "@effect/vitest"
import { Duration, Effect, type Layer } from "effect"
import { type RateLimit, RateLimiter } from "../../src/services/RateLimiter.ts"

const fresh = (label: string) => `${label}:${randomUUID()}`
const fivePer600ms: RateLimit = { limit: 5, window: "600 millis" }

const consumeTimes = (key: string, times: number, limit: RateLimit) =>
  Effect.flatMap(RateLimiter, (limiter) => Effect.all(Array.from({ length: times }, () => limiter.consume(key, limit))))

/**
 * What every RateLimiter implementation promises its callers. Runs on the real clock: the Redis
 * implementation takes its time from the Redis server.
 */
export const rateLimiterContract = (name: string, implementation: Layer.Layer<RateLimiter, unknown>) =>
  layer(implementation, { excludeTestServices: true })(`RateLimiter contract (${name})`, (it) => {
    it.effect("a burst of `limit` requests is allowed, counting down, and the next is denied", () =>
      Effect.gen(function* () {
        const decisions = yield* consumeTimes(fresh("burst"), 6, fivePer600ms)
        expect(decisions.slice(0, 5).map((d) => [d.allowed, d.remaining])).toEqual([
          [true, 4],
          [true, 3],
          [true, 2],
          [true, 1],
          [true, 0]
        ])
        for (const d of decisions.slice(0, 5)) expect(Duration.toMillis(d.retryAfter)).toBe(0)
        const denied = decisions[5]!
        expect(denied.allowed).toBe(false)
        expect(denied.remaining).toBe(0)
        expect(Duration.toMillis(denied.retryAfter)).toBeGreaterThan(0)
        expect(Duration.toMillis(denied.retryAfter)).toBeLessThanOrEqual(600)
      })
    )

    it.effect("after waiting retryAfter one more request is allowed, and only one", () =>
      Effect.gen(function* () {
        const limiter = yield* RateLimiter
        const key = fresh("retry")
        const [denied] = (yield* consumeTimes(key, 6, fivePer600ms)).slice(5)
        yield* Effect.sleep(Duration.sum(denied!.retryAfter, "20 millis"))
        expect((yield* limiter.consume(key, fivePer600ms)).allowed).toBe(true)
        expect((yield* limiter.consume(key, fivePer600ms)).allowed).toBe(false)
      })
    )

    it.effect("after a quiet window the whole burst is available again", () =>
      Effect.gen(function* () {
        const key = fresh("refill")
        const limit: RateLimit = { limit: 3, window: "300 millis" }
        expect((yield* consumeTimes(key, 4, limit)).map((d) => d.allowed)).toEqual([true, true, true, false])
        yield* Effect.sleep("350 millis")
        expect((yield* consumeTimes(key, 4, limit)).map((d) => d.allowed)).toEqual([true, true, true, false])
      })
    )

    it.effect("keys are limited independently", () =>
      Effect.gen(function* () {
        const limiter = yield* RateLimiter
        const exhausted = fresh("exhausted")
        yield* consumeTimes(exhausted, 5, fivePer600ms)
        expect((yield* limiter.consume(exhausted, fivePer600ms)).allowed).toBe(false)
        const other = yield* limiter.consume(fresh("other"), fivePer600ms)
        expect([other.allowed, other.remaining]).toEqual([true, 4])
      })
    )

    it.effect("reset makes a key fresh again", () =>
      Effect.gen(function* () {
        const limiter = yield* RateLimiter
        const key = fresh("reset")
        yield* consumeTimes(key, 5, fivePer600ms)
        expect((yield* limiter.consume(key, fivePer600ms)).allowed).toBe(false)
        yield* limiter.reset(key)
        const after = yield* limiter.consume(key, fivePer600ms)
        expect([after.allowed, after.remaining]).toEqual([true, 4])
      })
    )

    it.effect("of 50 concurrent requests with a limit of 10 exactly 10 are allowed", () =>
      Effect.gen(function* () {
        const limiter = yield* RateLimiter
        const key = fresh("concurrent")
        // A long window, so no request refills while the 50 are in flight.
        const limit: RateLimit = { limit: 10, window: "1 minute" }
        const decisions = yield* Effect.all(
          Array.from({ length: 50 }, () => limiter.consume(key, limit)),
          { concurrency: "unbounded" }
        )
        expect(decisions.filter((d) => d.allowed)).toHaveLength(10)
        expect(
          decisions
            .filter((d) => d.allowed)
            .map((d) => d.remaining)
            .sort()
        ).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
      })
    )
  })
