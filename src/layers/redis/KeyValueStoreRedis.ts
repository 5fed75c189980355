import { Duration, Effect, Layer, Option } from "effect"
import { KeyValueError, KeyValueStore } from "../../services/KeyValueStore.ts"
import { spanned } from "../../services/Span.ts"
import { RedisClient, type RedisError } from "./RedisClient.ts"

const compareAndSet = `
if redis.call("GET", KEYS[1]) == ARGV[1] then
  redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3])
  return 1
end
return 0`

const compareAndDelete = `
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0`

const increment = `
local count = redis.call("INCR", KEYS[1])
if count == 1 then redis.call("PEXPIRE", KEYS[1], ARGV[1]) end
return count`

const ms = (ttl: Duration.DurationInput) => Math.max(1, Math.ceil(Duration.toMillis(ttl)))
const mapError = (error: RedisError) => new KeyValueError({ operation: error.operation, cause: error.cause })

/** Redis strings with PX expiry; the compare operations are Lua scripts, so each is atomic. */
export const make = Effect.gen(function* () {
  const redis = yield* RedisClient
  const { key } = redis
  const run = <A>(operation: string, f: Parameters<typeof redis.use<A>>[1]) =>
    redis.use(operation, f).pipe(Effect.mapError(mapError))

  return KeyValueStore.of({
    get: spanned("KeyValueStore.get", (name) =>
      run("get", (c) => c.get(key(name))).pipe(Effect.map(Option.fromNullable))
    ),
    getMany: spanned("KeyValueStore.getMany", (names) =>
      names.length === 0
        ? Effect.succeed([])
        : run("getMany", (c) => c.mget(...names.map(key))).pipe(Effect.map((values) => values.map(Option.fromNullable)))
    ),
    set: spanned("KeyValueStore.set", (name, value, ttl) =>
      run("set", (c) => c.set(key(name), value, "PX", ms(ttl))).pipe(Effect.asVoid)
    ),
    setIfAbsent: spanned("KeyValueStore.setIfAbsent", (name, value, ttl) =>
      run("setIfAbsent", (c) => c.set(key(name), value, "PX", ms(ttl), "NX")).pipe(Effect.map((r) => r === "OK"))
    ),
    consume: spanned("KeyValueStore.consume", (name) =>
      run("consume", (c) => c.getdel(key(name))).pipe(Effect.map(Option.fromNullable))
    ),
    compareAndSet: spanned("KeyValueStore.compareAndSet", (name, expected, value, ttl) =>
      run("compareAndSet", (c) => c.eval(compareAndSet, 1, key(name), expected, value, ms(ttl))).pipe(
        Effect.map((r) => r === 1)
      )
    ),
    compareAndDelete: spanned("KeyValueStore.compareAndDelete", (name, expected) =>
      run("compareAndDelete", (c) => c.eval(compareAndDelete, 1, key(name), expected)).pipe(Effect.map((r) => r === 1))
    ),
    increment: spanned("KeyValueStore.increment", (name, ttl) =>
      run("increment", (c) => c.eval(increment, 1, key(name), ms(ttl))).pipe(Effect.map((r) => Number(r)))
    ),
    delete: spanned("KeyValueStore.delete", (name) => run("delete", (c) => c.del(key(name))).pipe(Effect.asVoid))
  })
})

export const KeyValueStoreRedis = Layer.effect(KeyValueStore, make)
