import { Context, Data, Duration, Effect, Layer, Redacted, type Scope } from "effect"
import { Redis } from "ioredis"
import { Settings } from "../Settings.ts"

export class RedisError extends Data.TaggedError("RedisError")<{
  readonly operation: string
  readonly cause: unknown
}> {}

/**
 * The shared ioredis connection of this node. Only the Redis-backed layers use it; no ioredis
 * type leaves `src/layers`.
 */
export class RedisClient extends Context.Tag("app/layers/RedisClient")<
  RedisClient,
  {
    readonly client: Redis
    /** Every key this server writes starts with this prefix (`REDIS_KEY_PREFIX`). */
    readonly key: (name: string) => string
    /** A dedicated connection, closed with the scope (for blocking commands). */
    readonly dedicated: Effect.Effect<Redis, RedisError, Scope.Scope>
    readonly use: <A>(operation: string, f: (client: Redis) => Promise<A>) => Effect.Effect<A, RedisError>
  }
>() {}

const options = {
  lazyConnect: true,
  connectTimeout: 2_000,
  maxRetriesPerRequest: 1,
  // While disconnected, commands fail at once instead of waiting in a queue: callers fall back to
  // Postgres (revocations) or deny, rather than hold requests for seconds.
  enableOfflineQueue: false,
  retryStrategy: (times: number) => Math.min(times * 100, 2_000)
}

const open = (url: string, name: string, pipelined = false) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      // The shared connection sends the commands issued in one tick in one write (a burst of requests
      // or session opens is a burst of GET/SET/MGET); blocking reads keep connections of their own.
      const client = new Redis(url, { ...options, connectionName: name, enableAutoPipelining: pipelined })
      // ioredis reports connection errors as events; readiness and callers see them as failures.
      client.on("error", () => {})
      return client
    }),
    (client) => Effect.promise(() => client.quit().catch(() => client.disconnect()))
  )

export const make = (url: Redacted.Redacted<string>, prefix: string) =>
  Effect.gen(function* () {
    const client = yield* open(Redacted.value(url), "lps", true)
    yield* Effect.tryPromise(() => client.connect()).pipe(
      Effect.timeout(Duration.seconds(5)),
      Effect.tap(() => Effect.logInfo("redis connected")),
      Effect.catchAll((cause) => Effect.logWarning("redis is not reachable yet; retrying in the background", cause))
    )
    const use = <A>(operation: string, f: (client: Redis) => Promise<A>) =>
      Effect.tryPromise({ try: () => f(client), catch: (cause) => new RedisError({ operation, cause }) })
    const dedicated = Effect.gen(function* () {
      const connection = yield* open(Redacted.value(url), "lps-blocking")
      yield* Effect.tryPromise({
        try: () => connection.connect(),
        catch: (cause) => new RedisError({ operation: "connect", cause })
      })
      return connection
    })
    return RedisClient.of({ client, key: (name) => prefix + name, dedicated, use })
  })

export const layer = (url: Redacted.Redacted<string>) =>
  Layer.scoped(
    RedisClient,
    Effect.flatMap(Settings.redisKeyPrefix, (prefix) => make(url, prefix))
  )
