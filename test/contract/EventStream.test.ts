import { Layer } from "effect"
import { EventStreamMemory } from "../../src/layers/EventStreamMemory.ts"
import { EventStreamRedis } from "../../src/layers/EventStreamRedis.ts"
import { eventStreamContract } from "./eventStreamContract.ts"
import { TestRedisClient } from "./TestRedisClient.ts"

eventStreamContract("memory", EventStreamMemory)
eventStreamContract("redis", EventStreamRedis.pipe(Layer.provide(TestRedisClient)), {
  knownBugs: {
    "an interrupted blocking read stops at once and the stream keeps working":
      "the pooled connection is closed with QUIT, which Redis answers only when the XREAD BLOCK ends",
    "a blocking read from a lost cursor reports the gap without waiting for the block time":
      "XREAD BLOCK is sent in the same pipeline as the gap check, so it blocks even when there is a gap"
  }
})
