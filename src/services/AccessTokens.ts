/**
 * AccessTokens: short-lived EdDSA JWTs (`typ: at+jwt`) naming a user and a session.
 * Owns: signing with the current key, verifying against our own keys only, the public JWKS.
 * Does not own: whether the session is still alive (Auth checks revocation after verifying).
 */
import { Context, Data, type Effect } from "effect"

export interface AccessClaims {
  readonly userId: string
  readonly sessionId: string
  readonly expiresAt: number
}

export class InvalidAccessToken extends Data.TaggedError("InvalidAccessToken")<{ readonly reason: string }> {}

export interface PublicJwk {
  readonly kty: string
  readonly crv: string
  readonly x: string
  readonly kid: string
  readonly alg: "EdDSA"
  readonly use: "sig"
}

export interface AccessTokensShape {
  readonly issue: (subject: {
    readonly userId: string
    readonly sessionId: string
  }) => Effect.Effect<{ readonly token: string; readonly expiresIn: number }>
  readonly verify: (token: string) => Effect.Effect<AccessClaims, InvalidAccessToken>
  /** `verify`'s claims for a token verified before and not expired; undefined otherwise (ask `verify`). */
  readonly verifiedNow: (token: string) => AccessClaims | undefined
  readonly jwks: { readonly keys: ReadonlyArray<PublicJwk> }
  /** Seconds an access token lives; revocation markers must outlive it. */
  readonly ttlSeconds: number
}

export class AccessTokens extends Context.Tag("app/AccessTokens")<AccessTokens, AccessTokensShape>() {}
