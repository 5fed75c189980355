import { Layer } from "effect"
import { KeyValueStoreMemory } from "../../src/layers/KeyValueStoreMemory.ts"
import { KeyValueStoreRedis } from "../../src/layers/KeyValueStoreRedis.ts"
import { keyValueStoreContract } from "./keyValueStoreContract.ts"
import { TestRedisClient } from "./TestRedisClient.ts"

keyValueStoreContract("memory", KeyValueStoreMemory)
keyValueStoreContract("redis", KeyValueStoreRedis.pipe(Layer.provide(TestRedisClient)))
