import { Layer } from "effect"
import { WorkQueueMemory } from "../../src/layers/WorkQueueMemory.ts"
import { WorkQueueRedis } from "../../src/layers/WorkQueueRedis.ts"
import { TestRedisClient } from "./TestRedisClient.ts"
import { workQueueContract } from "./workQueueContract.ts"

workQueueContract("memory", WorkQueueMemory)
workQueueContract("redis", WorkQueueRedis.pipe(Layer.provide(TestRedisClient)))
