import { existsSync } from "node:fs"
import { mkdtemp, readFile, rm, stat } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterEach, beforeEach, describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Redacted } from "effect"
import { generateJwk, KeysLive } from "../../src/layers/auth/Keys.ts"
import { Keys } from "../../src/services/Keys.ts"

let dataDir = ""
beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "keys-test-"))
})
afterEach(() => rm(dataDir, { recursive: true, force: true }))

/** Starts the Keys layer as the server would, with these settings and a throwaway DATA_DIR. */
const start = (settings: ReadonlyArray<[string, string]> = []) =>
  Keys.pipe(
    Effect.provide(KeysLive),
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["DATA_DIR", dataDir], ...settings])))
  )

const mfaKey = Buffer.alloc(32, 7).toString("base64")
const withMfa: [string, string] = ["MFA_ENCRYPTION_KEY", mfaKey]
const withJwt = (value: string): [string, string] => ["JWT_PRIVATE_KEYS", value]

describe("Keys", () => {
  it.effect("without settings, keys are generated into DATA_DIR/keys.json readable by the owner only", () =>
    Effect.gen(function* () {
      const keys = yield* start()
      const path = join(dataDir, "keys.json")
      const file = yield* Effect.promise(() => stat(path))
      expect(file.mode & 0o777).toBe(0o600)
      const stored = JSON.parse(yield* Effect.promise(() => readFile(path, "utf8")))
      expect(stored.jwt.keys[0].kid).toBe(keys.jwt[0].kid)
      expect(Redacted.value(keys.mfaKey)).toHaveLength(32)
    })
  )

  it.effect("a second start reuses the generated keys", () =>
    Effect.gen(function* () {
      const first = yield* start()
      const second = yield* start()
      expect(second.jwt[0].kid).toBe(first.jwt[0].kid)
      expect(second.jwt[0].d).toBe(first.jwt[0].d)
      expect(Redacted.value(second.mfaKey).equals(Redacted.value(first.mfaKey))).toBe(true)
    })
  )

  it.effect("keys from the settings are used, the first one signs, and nothing is written", () =>
    Effect.gen(function* () {
      const signing = yield* Effect.promise(generateJwk)
      const previous = yield* Effect.promise(generateJwk)
      const keys = yield* start([withJwt(JSON.stringify({ keys: [signing, previous] })), withMfa])
      expect(keys.jwt.map((key) => key.kid)).toEqual([signing.kid, previous.kid])
      expect(Redacted.value(keys.mfaKey).toString("base64")).toBe(mfaKey)
      expect(existsSync(join(dataDir, "keys.json"))).toBe(false)
    })
  )

  it.effect("a bad JWT_PRIVATE_KEYS stops the start with a message naming it, without its value", () =>
    Effect.gen(function* () {
      const jwk = yield* Effect.promise(generateJwk)
      const { d: _, ...publicOnly } = jwk
      for (const value of [
        `{"keys":[{"kty":"OKP","d":"${jwk.d}"`,
        JSON.stringify({ keys: [] }),
        JSON.stringify({ keys: [publicOnly] }),
        JSON.stringify([jwk])
      ]) {
        const error = yield* Effect.flip(start([withJwt(value), withMfa]))
        expect(error.message).toContain("JWT_PRIVATE_KEYS")
        expect(error.message).not.toContain(jwk.d)
      }
    })
  )

  it.effect("an MFA_ENCRYPTION_KEY that is not 32 bytes stops the start with a message naming it", () =>
    Effect.gen(function* () {
      const jwt = JSON.stringify({ keys: [yield* Effect.promise(generateJwk)] })
      for (const value of [Buffer.alloc(16).toString("base64"), Buffer.alloc(33).toString("base64"), "not base64!"]) {
        const error = yield* Effect.flip(start([withJwt(jwt), ["MFA_ENCRYPTION_KEY", value]]))
        expect(error.message).toContain("MFA_ENCRYPTION_KEY")
      }
    })
  )
})
