import { createHash } from "node:crypto"
import { Duration, Effect, Layer, Option } from "effect"
import { spannedGen } from "../../services/Span.ts"
import { errors, importJWK, type JWTPayload, jwtVerify, SignJWT } from "jose"
import { AccessTokens, InvalidAccessToken, type PublicJwk } from "../../services/AccessTokens.ts"
import { Keys } from "../../services/Keys.ts"
import { Settings } from "../Settings.ts"

const TYPE = "at+jwt"
/** Verified tokens kept (about 200 bytes each). */
const MAX_VERIFIED = 100_000

type Claims = { readonly userId: string; readonly sessionId: string; readonly expiresAt: number }
const CLOCK_TOLERANCE_SECONDS = 5

/**
 * EdDSA (Ed25519) with jose. Keys are imported once; verification accepts only EdDSA, only our own
 * `kid`s, and checks `typ`, `iss`, `aud` and `exp`. Header fields that point elsewhere
 * (`jku`, `x5u`, `jwk`) are never followed: the key comes from our table or nowhere.
 */
export const make = Effect.gen(function* () {
  const keys = yield* Keys
  const issuer = Option.getOrElse(yield* Settings.jwtIssuer, () => "")
  const audience = yield* Settings.jwtAudience
  const ttl = yield* Settings.accessTokenTtl
  const iss = issuer === "" ? yield* Settings.publicUrl : issuer
  const ttlSeconds = Math.floor(Duration.toSeconds(ttl))

  const imported = yield* Effect.promise(() =>
    Promise.all(
      keys.jwt.map(async (jwk) => ({
        kid: jwk.kid,
        privateKey: await importJWK({ ...jwk, alg: "EdDSA" }, "EdDSA"),
        publicKey: await importJWK({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, alg: "EdDSA" }, "EdDSA"),
        publicJwk: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, kid: jwk.kid, alg: "EdDSA", use: "sig" } as PublicJwk
      }))
    )
  )
  const signing = imported[0]!
  /**
   * Tokens verified before, by the SHA-256 of the token, until their `exp` (jose's clock tolerance
   * is not extended to them): a token seen again costs a hash and a lookup, not an Ed25519
   * verification. At most MAX_VERIFIED, the oldest forgotten first. Revocation is checked apart,
   * on every request (Revocations).
   */
  const verified = new Map<string, Claims>()
  const remember = (key: string, result: Claims) => {
    if (Date.now() >= result.expiresAt * 1000) return
    verified.set(key, result)
    if (verified.size > MAX_VERIFIED) verified.delete(verified.keys().next().value!)
  }
  const byKid = new Map(imported.map((key) => [key.kid, key.publicKey]))
  const keyOf = (token: string) => createHash("sha256").update(token).digest("base64")
  const verifiedNow = (token: string) => {
    const key = keyOf(token)
    const known = verified.get(key)
    if (known === undefined) return undefined
    if (Date.now() < known.expiresAt * 1000) return known
    verified.delete(key)
    return undefined
  }

  return AccessTokens.of({
    ttlSeconds,
    jwks: { keys: imported.map((key) => key.publicJwk) },
    issue: Effect.fn("AccessTokens.issue")(function* ({ userId, sessionId }) {
      const token = yield* Effect.promise(() => {
        // jose checks exp against the wall clock, so iat comes from the same clock, read once.
        const iat = Math.floor(Date.now() / 1000)
        return new SignJWT({ sid: sessionId })
          .setProtectedHeader({ alg: "EdDSA", typ: TYPE, kid: signing.kid })
          .setIssuer(iss)
          .setAudience(audience)
          .setSubject(userId)
          .setIssuedAt(iat)
          .setExpirationTime(iat + ttlSeconds)
          .sign(signing.privateKey)
      })
      return { token, expiresIn: ttlSeconds }
    }),
    verifiedNow,
    verify: spannedGen("AccessTokens.verify", function* (token) {
      const known = verifiedNow(token)
      if (known !== undefined) return known
      const key = keyOf(token)
      const { payload } = yield* Effect.tryPromise({
        try: () =>
          jwtVerify(
            token,
            (header) => {
              const key = header.kid === undefined ? undefined : byKid.get(header.kid)
              if (key === undefined) throw new errors.JWKSNoMatchingKey()
              return key
            },
            {
              algorithms: ["EdDSA"],
              issuer: iss,
              audience,
              typ: TYPE,
              clockTolerance: CLOCK_TOLERANCE_SECONDS,
              requiredClaims: ["sub", "sid", "exp", "iat"]
            }
          ),
        catch: (error) => new InvalidAccessToken({ reason: error instanceof Error ? error.name : "invalid" })
      })
      const result = yield* claims(payload)
      remember(key, result)
      return result
    })
  })
})

const claims = (payload: JWTPayload): Effect.Effect<Claims, InvalidAccessToken> =>
  typeof payload.sub === "string" && typeof payload.sid === "string" && typeof payload.exp === "number"
    ? Effect.succeed({ userId: payload.sub, sessionId: payload.sid, expiresAt: payload.exp })
    : Effect.fail(new InvalidAccessToken({ reason: "claims" }))

export const AccessTokensLive = Layer.effect(AccessTokens, make)
