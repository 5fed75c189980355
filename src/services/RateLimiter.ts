/**
 * RateLimiter: GCRA (generic cell rate algorithm) limits per key, shared by every node.
 *
 * Owns: deciding whether one more request under a key fits `limit` per `window`, and when the next
 * one will. Does not own: which keys exist (callers build them from ip, account, endpoint).
 */
import { Context, Data, type Duration, type Effect } from "effect"

export class RateLimiterError extends Data.TaggedError("RateLimiterError")<{
  readonly operation: string
  readonly cause: unknown
}> {}

export interface RateLimit {
  /** Requests allowed per window; bursts of up to `limit` are allowed. */
  readonly limit: number
  readonly window: Duration.DurationInput
}

export interface RateLimitDecision {
  readonly allowed: boolean
  /** Requests still allowed right now. */
  readonly remaining: number
  /** When denied, how long until one request fits again; zero when allowed. */
  readonly retryAfter: Duration.Duration
}

export interface RateLimiterShape {
  readonly consume: (key: string, limit: RateLimit) => Effect.Effect<RateLimitDecision, RateLimiterError>
  readonly reset: (key: string) => Effect.Effect<void, RateLimiterError>
}

export class RateLimiter extends Context.Tag("app/RateLimiter")<RateLimiter, RateLimiterShape>() {}
