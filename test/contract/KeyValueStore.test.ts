import { Layer } from "effect"
import { KeyValueStoreMemory } from "../../src/layers/memory/KeyValueStoreMemory.ts"
import { KeyValueStoreRedis } from "../../src/layers/redis/KeyValueStoreRedis.ts"
import { keyValueStoreContract } from "./keyValueStoreContract.ts"
import { TestRedisClient } from "./TestRedisClient.ts"

keyValueStoreContract("memory", KeyValueStoreMemory)
keyValueStoreContract("redis", KeyValueStoreRedis.pipe(Layer.provide(TestRedisClient)))
