import { Duration, Effect, Layer } from "effect"
import { RateLimiter, RateLimiterError } from "../../services/RateLimiter.ts"
import { spanned } from "../../services/Span.ts"
import { RedisClient, type RedisError } from "./RedisClient.ts"

/**
 * GCRA in one Lua script, timed by the Redis server clock so every node agrees.
 * The same steps as `gcra` in Gcra.ts. Returns {allowed, remaining, retryAfterMs}.
 */
const script = `
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local interval = window / limit
local time = redis.call("TIME")
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local tat = tonumber(redis.call("GET", KEYS[1]) or now)
if tat < now then tat = now end
local newTat = tat + interval
local allowAt = newTat - window
if now < allowAt then
  return {0, 0, math.ceil(allowAt - now)}
end
redis.call("SET", KEYS[1], tostring(newTat), "PX", math.max(1, math.ceil(newTat - now)))
return {1, math.floor((now - allowAt) / interval), 0}`

export const make = Effect.gen(function* () {
  const redis = yield* RedisClient
  const key = (name: string) => redis.key(`rl:${name}`)
  const toError = (e: RedisError) => new RateLimiterError({ operation: e.operation, cause: e.cause })
  return RateLimiter.of({
    consume: spanned("RateLimiter.consume", (name, { limit, window }) =>
      redis
        .use("consume", (c) => c.eval(script, 1, key(name), limit, Duration.toMillis(window)))
        .pipe(
          Effect.map((reply) => {
            const [allowed, remaining, retryAfterMs] = reply as [number, number, number]
            return { allowed: allowed === 1, remaining, retryAfter: Duration.millis(retryAfterMs) }
          }),
          Effect.mapError(toError)
        )
    ),
    reset: spanned("RateLimiter.reset", (name) =>
      redis.use("reset", (c) => c.del(key(name))).pipe(Effect.asVoid, Effect.mapError(toError))
    )
  })
})

export const RateLimiterRedis = Layer.effect(RateLimiter, make)
