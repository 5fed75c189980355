import { Clock, Duration, Effect, Layer, Schedule } from "effect"
import { gcra } from "../../domain/Gcra.ts"
import { RateLimiter } from "../../services/RateLimiter.ts"
import { spanned } from "../../services/Span.ts"

/** In-process GCRA limiter for the embedded single-node mode and as a test fake. */
export const make = Effect.gen(function* () {
  const tats = new Map<string, number>()

  yield* Effect.gen(function* () {
    const now = yield* Clock.currentTimeMillis
    for (const [key, tat] of tats) if (tat <= now) tats.delete(key)
  }).pipe(Effect.repeat(Schedule.spaced("30 seconds")), Effect.forkScoped)

  return RateLimiter.of({
    consume: spanned("RateLimiter.consume", (key, { limit, window }) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const step = gcra(now, tats.get(key), limit, Duration.toMillis(window))
        if (step.allowed) tats.set(key, step.tat)
        return { allowed: step.allowed, remaining: step.remaining, retryAfter: Duration.millis(step.retryAfterMs) }
      })
    ),
    reset: spanned("RateLimiter.reset", (key) => Effect.sync(() => tats.delete(key)))
  })
})

export const RateLimiterMemory = Layer.scoped(RateLimiter, make)
