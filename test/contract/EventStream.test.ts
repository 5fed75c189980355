import { Layer } from "effect"
import { EventStreamMemory } from "../../src/layers/EventStreamMemory.ts"
import { EventStreamRedis } from "../../src/layers/EventStreamRedis.ts"
import { eventStreamContract } from "./eventStreamContract.ts"
import { TestRedisClient } from "./TestRedisClient.ts"

eventStreamContract("memory", EventStreamMemory)
eventStreamContract("redis", EventStreamRedis.pipe(Layer.provide(TestRedisClient)))
