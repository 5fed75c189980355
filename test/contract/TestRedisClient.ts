import { Effect, Layer, Logger, Redacted } from "effect"
import { inject } from "vitest"
import { make as makeRedisClient, RedisClient } from "../../src/layers/redis/RedisClient.ts"
import { testRedisPrefix } from "../support/TestDatabase.ts"

/**
 * A RedisClient on the throwaway test Redis under a key prefix of its own, so suites running in
 * parallel do not see each other's keys. Its connections close with the layer.
 */
export const TestRedisClient = Layer.scoped(
  RedisClient,
  Effect.suspend(() => makeRedisClient(Redacted.make(inject("redisUrl")), testRedisPrefix()))
).pipe(Layer.provide(Logger.remove(Logger.defaultLogger)))
