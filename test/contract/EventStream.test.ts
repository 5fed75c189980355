import { Layer } from "effect"
import { EventStreamMemory } from "../../src/layers/memory/EventStreamMemory.ts"
import { EventStreamRedis } from "../../src/layers/redis/EventStreamRedis.ts"
import { eventStreamContract } from "./eventStreamContract.ts"
import { TestRedisClient } from "./TestRedisClient.ts"

eventStreamContract("memory", EventStreamMemory)
eventStreamContract("redis", EventStreamRedis.pipe(Layer.provide(TestRedisClient)))
