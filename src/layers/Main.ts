/**
 * The one composition root. Infra picks real Postgres/Redis or the embedded defaults from the
 * settings; Transport serves HTTP and WebSockets on top of it. `LoggingLive` (Logging.ts) is
 * provided around the whole program by main.ts, so every layer logs in the configured format.
 */
import { Effect, Layer, Option } from "effect"
import { DatabaseLive, MigrationsLive } from "./Database.ts"
import { EventStreamMemory } from "./EventStreamMemory.ts"
import { EventStreamRedis } from "./EventStreamRedis.ts"
import { HttpServerLive } from "./HttpServer.ts"
import { KeyValueStoreMemory } from "./KeyValueStoreMemory.ts"
import { KeyValueStoreRedis } from "./KeyValueStoreRedis.ts"
import { LiveSocketServerLive } from "./LiveSocketServer.ts"
import { RateLimiterMemory } from "./RateLimiterMemory.ts"
import { RateLimiterRedis } from "./RateLimiterRedis.ts"
import { ReadinessLive } from "./ReadinessLive.ts"
import * as RedisClient from "./RedisClient.ts"
import { Settings, validateAll } from "./Settings.ts"
import { loadUws } from "./Uws.ts"

/** Event stream, key-value store and rate limiter: Redis when REDIS_URL is set, in-process otherwise. */
export const EphemeralLive = Layer.unwrapEffect(
  Effect.gen(function* () {
    const url = yield* Settings.redisUrl
    const database = Option.isSome(yield* Settings.databaseUrl) ? "postgres" : "embedded PGlite"
    if (Option.isNone(url)) {
      yield* Effect.logInfo(
        `mode: ${database} + in-process events, key-value store and rate limits (single node only; set REDIS_URL to scale out)`
      )
      return Layer.mergeAll(EventStreamMemory, KeyValueStoreMemory, RateLimiterMemory)
    }
    yield* Effect.logInfo(`mode: ${database} + redis (multi-node)`)
    return Layer.mergeAll(EventStreamRedis, KeyValueStoreRedis, RateLimiterRedis).pipe(
      Layer.provide(RedisClient.layer(url.value))
    )
  })
)

export const InfraLive = Layer.mergeAll(EphemeralLive, MigrationsLive.pipe(Layer.provideMerge(DatabaseLive)))

export const TransportLive = Layer.mergeAll(HttpServerLive, LiveSocketServerLive)

/** A bad setting or a missing native binary stops the server before anything is opened. */
const Preflight = Layer.effectDiscard(Effect.zipRight(validateAll, loadUws))

export const MainLive = TransportLive.pipe(
  Layer.provide(ReadinessLive),
  Layer.provide(InfraLive),
  Layer.provide(Preflight)
)
