import { randomBytes } from "node:crypto"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer, Redacted } from "effect"
import { decodeJwt, decodeProtectedHeader, importJWK, type JWTHeaderParameters, type JWTPayload, SignJWT } from "jose"
import { AccessTokensLive } from "../../src/layers/auth/AccessTokensLive.ts"
import { generateJwk } from "../../src/layers/auth/Keys.ts"
import { AccessTokens } from "../../src/services/AccessTokens.ts"
import { Keys, type PrivateJwk } from "../../src/services/Keys.ts"

const ISSUER = "https://issuer.example.com"
const AUDIENCE = "test-audience"
const TTL_SECONDS = 600

const settings = ConfigProvider.fromMap(
  new Map([
    ["PUBLIC_URL", "https://api.example.com"],
    ["JWT_ISSUER", ISSUER],
    ["JWT_AUDIENCE", AUDIENCE],
    ["ACCESS_TOKEN_TTL", "10 minutes"]
  ])
)

const tokensLayer = (jwt: readonly [PrivateJwk, ...Array<PrivateJwk>], config = settings) =>
  AccessTokensLive.pipe(
    Layer.provide(Layer.succeed(Keys, { jwt, mfaKey: Redacted.make(randomBytes(32)) })),
    Layer.provide(Layer.setConfigProvider(config))
  )

/** Runs `f` against a separate AccessTokens instance (another node, another key set). */
const withTokens = <A, E>(
  jwt: readonly [PrivateJwk, ...Array<PrivateJwk>],
  f: (tokens: typeof AccessTokens.Service) => Effect.Effect<A, E>,
  config = settings
) => Effect.flatMap(AccessTokens, f).pipe(Effect.provide(tokensLayer(jwt, config)))

const ours = await generateJwk()
const attacker = await generateJwk()

const now = () => Math.floor(Date.now() / 1000)
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url")

const goodClaims = (): JWTPayload => ({
  iss: ISSUER,
  aud: AUDIENCE,
  sub: "user-1",
  sid: "session-1",
  iat: now(),
  exp: now() + TTL_SECONDS
})

/** Signs a token by hand: by default exactly what the server would issue, with our key. */
const craft = async ({
  claims = goodClaims(),
  header = { alg: "EdDSA", typ: "at+jwt", kid: ours.kid },
  key = ours
}: {
  claims?: JWTPayload
  header?: JWTHeaderParameters
  key?: PrivateJwk
} = {}) => new SignJWT(claims).setProtectedHeader(header).sign(await importJWK({ ...key, alg: "EdDSA" }, "EdDSA"))

const rejected = (token: string) =>
  Effect.gen(function* () {
    const tokens = yield* AccessTokens
    const error = yield* Effect.flip(tokens.verify(token))
    expect(error._tag).toBe("InvalidAccessToken")
  })

const without = (claims: JWTPayload, name: string) =>
  Object.fromEntries(Object.entries(claims).filter(([key]) => key !== name)) as JWTPayload

describe("AccessTokens", () => {
  it.layer(tokensLayer([ours]))((it) => {
    it.effect("an issued token verifies and names the user and the session", () =>
      Effect.gen(function* () {
        const tokens = yield* AccessTokens
        const { token, expiresIn } = yield* tokens.issue({ userId: "user-1", sessionId: "session-1" })
        const claims = yield* tokens.verify(token)
        expect(expiresIn).toBe(TTL_SECONDS)
        expect(claims).toEqual({ userId: "user-1", sessionId: "session-1", expiresAt: decodeJwt(token).exp })
      })
    )

    it.effect("an issued token is an EdDSA at+jwt with our kid and iss, aud, sub, sid, iat, exp", () =>
      Effect.gen(function* () {
        const tokens = yield* AccessTokens
        const { token } = yield* tokens.issue({ userId: "user-1", sessionId: "session-1" })
        expect(decodeProtectedHeader(token)).toEqual({ alg: "EdDSA", typ: "at+jwt", kid: ours.kid })
        const claims = decodeJwt(token)
        expect(Object.keys(claims).sort()).toEqual(["aud", "exp", "iat", "iss", "sid", "sub"])
        expect(claims).toMatchObject({ iss: ISSUER, aud: AUDIENCE, sub: "user-1", sid: "session-1" })
        expect(Math.abs(claims.iat! - now())).toBeLessThanOrEqual(2)
        expect(claims.exp! - claims.iat!).toBe(TTL_SECONDS)
      })
    )

    // Control: the hand-built tokens below fail only because of the one thing each changes.
    it.effect("a hand-built token with our key, header and claims verifies", () =>
      Effect.gen(function* () {
        const tokens = yield* AccessTokens
        const claims = yield* tokens.verify(yield* Effect.promise(() => craft()))
        expect(claims.userId).toBe("user-1")
      })
    )

    it.effect("an unsigned alg:none token is rejected", () =>
      Effect.gen(function* () {
        yield* rejected(`${b64({ alg: "none", typ: "at+jwt", kid: ours.kid })}.${b64(goodClaims())}.`)
        yield* rejected(`${b64({ alg: "none", typ: "at+jwt" })}.${b64(goodClaims())}.`)
      })
    )

    it.effect("an HS256 token keyed with our public key is rejected", () =>
      Effect.gen(function* () {
        for (const secret of [Buffer.from(ours.x, "base64url"), Buffer.from(ours.x)]) {
          const token = yield* Effect.promise(() =>
            new SignJWT(goodClaims()).setProtectedHeader({ alg: "HS256", typ: "at+jwt", kid: ours.kid }).sign(secret)
          )
          yield* rejected(token)
        }
      })
    )

    it.effect("a token signed by another Ed25519 key under our kid is rejected", () =>
      Effect.promise(() => craft({ key: { ...attacker, kid: ours.kid } })).pipe(Effect.flatMap(rejected))
    )

    it.effect("a token with an unknown kid or no kid is rejected, even when signed with our key", () =>
      Effect.gen(function* () {
        yield* rejected(yield* Effect.promise(() => craft({ header: { alg: "EdDSA", typ: "at+jwt", kid: "nope" } })))
        yield* rejected(yield* Effect.promise(() => craft({ header: { alg: "EdDSA", typ: "at+jwt" } })))
      })
    )

    it.effect("a token whose payload was changed is rejected", () =>
      Effect.gen(function* () {
        const tokens = yield* AccessTokens
        const { token } = yield* tokens.issue({ userId: "user-1", sessionId: "session-1" })
        // Verified first, so it is in the cache of verified tokens: a variant must not hit it.
        yield* tokens.verify(token)
        const [header, , signature] = token.split(".")
        yield* rejected(`${header}.${b64({ ...decodeJwt(token), sub: "admin" })}.${signature}`)
      })
    )

    it.effect("a token whose signature was changed is rejected", () =>
      Effect.gen(function* () {
        const tokens = yield* AccessTokens
        const { token } = yield* tokens.issue({ userId: "user-1", sessionId: "session-1" })
        yield* tokens.verify(token)
        const [header, payload, signature] = token.split(".") as [string, string, string]
        // A middle character: every bit of it is signature data (the last one carries padding bits).
        const flipped = signature[10] === "A" ? "B" : "A"
        yield* rejected(`${header}.${payload}.${signature.slice(0, 10)}${flipped}${signature.slice(11)}`)
      })
    )

    it.effect("a token for another audience or issuer, or without them, is rejected", () =>
      Effect.gen(function* () {
        const claims = goodClaims()
        for (const bad of [
          { ...claims, aud: "other-service" },
          { ...claims, iss: "https://evil.example.com" },
          without(claims, "aud"),
          without(claims, "iss")
        ]) {
          yield* rejected(yield* Effect.promise(() => craft({ claims: bad })))
        }
      })
    )

    it.effect("a token without a session id, subject or expiry is rejected", () =>
      Effect.gen(function* () {
        for (const claim of ["sid", "sub", "exp"]) {
          yield* rejected(yield* Effect.promise(() => craft({ claims: without(goodClaims(), claim) })))
        }
      })
    )

    it.effect("a token that expired more than 5 seconds ago is rejected", () =>
      Effect.gen(function* () {
        const claims = { ...goodClaims(), iat: now() - TTL_SECONDS - 10, exp: now() - 10 }
        yield* rejected(yield* Effect.promise(() => craft({ claims })))
      })
    )

    it.effect("a token that is not valid yet (nbf in the future) is rejected", () =>
      Effect.gen(function* () {
        yield* rejected(yield* Effect.promise(() => craft({ claims: { ...goodClaims(), nbf: now() + 60 } })))
      })
    )

    it.effect("a token of another type (JWT, refresh+jwt, none) is rejected as an access token", () =>
      Effect.gen(function* () {
        for (const typ of ["JWT", "refresh+jwt", undefined]) {
          const header = typ === undefined ? { alg: "EdDSA", kid: ours.kid } : { alg: "EdDSA", typ, kid: ours.kid }
          yield* rejected(yield* Effect.promise(() => craft({ header })))
        }
      })
    )
  })

  describe("headers that point at other keys (jku, x5u, jwk)", () => {
    // An attacker's key server: answers with the attacker's public key and counts every request.
    let hits = 0
    let keyServer = ""
    const server = createServer((_, res) => {
      hits++
      res.setHeader("content-type", "application/json")
      res.end(JSON.stringify({ keys: [{ kty: "OKP", crv: "Ed25519", x: attacker.x, kid: attacker.kid }] }))
    })
    beforeAll(async () => {
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
      keyServer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    })
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

    const attackerJwk = { kty: "OKP", crv: "Ed25519", x: attacker.x }

    it.live("a token signed by the attacker's key is rejected and the key is never fetched", () =>
      Effect.gen(function* () {
        const headers: Array<JWTHeaderParameters> = [
          { alg: "EdDSA", typ: "at+jwt", kid: attacker.kid, jku: `${keyServer}/jwks.json` },
          { alg: "EdDSA", typ: "at+jwt", kid: ours.kid, jku: `${keyServer}/jwks.json` },
          { alg: "EdDSA", typ: "at+jwt", kid: ours.kid, x5u: `${keyServer}/cert.pem` },
          { alg: "EdDSA", typ: "at+jwt", kid: ours.kid, jwk: attackerJwk },
          { alg: "EdDSA", typ: "at+jwt", jwk: attackerJwk }
        ]
        for (const header of headers) {
          const token = yield* Effect.promise(() => craft({ header, key: attacker }))
          const started = performance.now()
          yield* rejected(token).pipe(Effect.provide(tokensLayer([ours])))
          expect(performance.now() - started).toBeLessThan(500)
        }
        expect(hits).toBe(0)
      })
    )
  })

  describe("key rotation", () => {
    it.effect("a token signed with the previous key still verifies after rotation", () =>
      Effect.gen(function* () {
        const previous = yield* Effect.promise(generateJwk)
        const next = yield* Effect.promise(generateJwk)
        const { token } = yield* withTokens([previous], (tokens) =>
          tokens.issue({ userId: "user-1", sessionId: "session-1" })
        )
        const claims = yield* withTokens([next, previous], (tokens) => tokens.verify(token))
        expect(claims).toMatchObject({ userId: "user-1", sessionId: "session-1" })
        // Once the previous key is dropped from the set, its tokens stop verifying.
        const error = yield* withTokens([next], (tokens) => Effect.flip(tokens.verify(token)))
        expect(error._tag).toBe("InvalidAccessToken")
      })
    )

    it.effect("after rotation new tokens are signed with the new key", () =>
      Effect.gen(function* () {
        const previous = yield* Effect.promise(generateJwk)
        const next = yield* Effect.promise(generateJwk)
        const { token } = yield* withTokens([next, previous], (tokens) =>
          tokens.issue({ userId: "user-1", sessionId: "session-1" })
        )
        expect(decodeProtectedHeader(token).kid).toBe(next.kid)
        yield* withTokens([next], (tokens) => tokens.verify(token))
      })
    )

    it.effect("the JWKS lists every public key for EdDSA signatures and no private part", () =>
      Effect.gen(function* () {
        const previous = yield* Effect.promise(generateJwk)
        const next = yield* Effect.promise(generateJwk)
        const jwks = yield* withTokens([next, previous], (tokens) => Effect.succeed(tokens.jwks))
        const published = (key: PrivateJwk) => ({
          kty: "OKP",
          crv: "Ed25519",
          x: key.x,
          kid: key.kid,
          alg: "EdDSA",
          use: "sig"
        })
        expect(jwks.keys).toEqual([published(next), published(previous)])
        for (const key of jwks.keys) expect(key).not.toHaveProperty("d")
        expect(JSON.stringify(jwks)).not.toContain(next.d)
        expect(JSON.stringify(jwks)).not.toContain(previous.d)
      })
    )
  })

  it.effect("without JWT_ISSUER the issuer is PUBLIC_URL", () =>
    Effect.gen(function* () {
      const config = ConfigProvider.fromMap(new Map([["PUBLIC_URL", "https://api.example.com/"]]))
      const { token } = yield* withTokens([ours], (tokens) => tokens.issue({ userId: "u", sessionId: "s" }), config)
      expect(decodeJwt(token).iss).toBe("https://api.example.com")
    })
  )
})
