import { Layer } from "effect"
import { WorkQueueMemory } from "../../src/layers/memory/WorkQueueMemory.ts"
import { WorkQueueRedis } from "../../src/layers/redis/WorkQueueRedis.ts"
import { TestRedisClient } from "./TestRedisClient.ts"
import { workQueueContract } from "./workQueueContract.ts"

workQueueContract("memory", WorkQueueMemory)
workQueueContract("redis", WorkQueueRedis.pipe(Layer.provide(TestRedisClient)))
