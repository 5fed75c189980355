import { Layer } from "effect"
import { RateLimiterMemory } from "../../src/layers/memory/RateLimiterMemory.ts"
import { RateLimiterRedis } from "../../src/layers/redis/RateLimiterRedis.ts"
import { rateLimiterContract } from "./rateLimiterContract.ts"
import { TestRedisClient } from "./TestRedisClient.ts"

rateLimiterContract("memory", RateLimiterMemory)
rateLimiterContract("redis", RateLimiterRedis.pipe(Layer.provide(TestRedisClient)))
