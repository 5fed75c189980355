/**
 * Signing and encryption keys: from JWT_PRIVATE_KEYS / MFA_ENCRYPTION_KEY when set, otherwise
 * generated once into DATA_DIR/keys.json (mode 0600). Generated keys belong to one node: a cluster
 * must share keys through the settings (`yarn keys` prints a fresh set).
 */

import { randomBytes } from "node:crypto"
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { Data, Effect, Layer, Option, Redacted, Schema } from "effect"
import { exportJWK, generateKeyPair, type JWK } from "jose"
import { Keys, PrivateJwk } from "../../services/Keys.ts"
import { Settings } from "../Settings.ts"

export class KeysError extends Data.TaggedError("KeysError")<{ readonly message: string }> {}

const JwkSet = Schema.parseJson(Schema.Struct({ keys: Schema.NonEmptyArray(PrivateJwk) }))
const MfaKey = Schema.String.pipe(
  Schema.filter((s) => Buffer.from(s, "base64").length === 32, { message: () => "must be 32 bytes, base64" })
)
const KeysFile = Schema.Struct({ jwt: Schema.Struct({ keys: Schema.NonEmptyArray(PrivateJwk) }), mfaKey: MfaKey })

export const generateJwk = async (): Promise<PrivateJwk> => {
  const { privateKey } = await generateKeyPair("EdDSA", { crv: "Ed25519", extractable: true })
  const jwk = (await exportJWK(privateKey)) as JWK
  return { kty: "OKP", crv: "Ed25519", x: jwk.x!, d: jwk.d!, kid: randomBytes(8).toString("hex") }
}

export const generateKeys = Effect.promise(async () => ({
  jwt: { keys: [await generateJwk()] as [PrivateJwk] },
  mfaKey: randomBytes(32).toString("base64")
}))

const fromSetting = <A, I>(name: string, schema: Schema.Schema<A, I>, value: Redacted.Redacted<string>) =>
  Schema.decodeUnknown(schema)(Redacted.value(value)).pipe(
    Effect.mapError(() => new KeysError({ message: `invalid setting ${name}: not a valid value (see .env.example)` }))
  )

const fromDataDir = Effect.gen(function* () {
  const dir = resolve(yield* Settings.dataDir)
  const path = join(dir, "keys.json")
  if (existsSync(path)) {
    return yield* Schema.decodeUnknown(Schema.parseJson(KeysFile))(readFileSync(path, "utf8")).pipe(
      Effect.mapError(() => new KeysError({ message: `${path} is not a valid keys file` }))
    )
  }
  const keys = yield* generateKeys
  mkdirSync(dir, { recursive: true })
  writeFileSync(path, JSON.stringify(keys, null, 2), { mode: 0o600 })
  // Fine for the embedded single node; with a shared database, every node needs the same keys.
  const log = Option.isSome(yield* Settings.databaseUrl) ? Effect.logWarning : Effect.logInfo
  yield* log(
    `keys: generated signing and MFA keys into ${path}; set JWT_PRIVATE_KEYS and MFA_ENCRYPTION_KEY to share them across nodes`
  )
  return keys
})

export const KeysLive = Layer.effect(
  Keys,
  Effect.gen(function* () {
    const jwtSetting = yield* Settings.jwtPrivateKeys
    const mfaSetting = yield* Settings.mfaEncryptionKey
    const stored = Option.isSome(jwtSetting) && Option.isSome(mfaSetting) ? undefined : yield* fromDataDir
    const jwt = Option.isSome(jwtSetting)
      ? (yield* fromSetting("JWT_PRIVATE_KEYS", JwkSet, jwtSetting.value)).keys
      : stored!.jwt.keys
    const mfaKey = Option.isSome(mfaSetting)
      ? yield* fromSetting("MFA_ENCRYPTION_KEY", MfaKey, mfaSetting.value)
      : stored!.mfaKey
    return { jwt, mfaKey: Redacted.make(Buffer.from(mfaKey, "base64")) }
  })
)
