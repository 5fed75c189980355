/**
 * Keys: this node's secret keys: the Ed25519 keys that sign and verify access tokens, and the key
 * that seals TOTP secrets at rest.
 *
 * Owns: the key material as loaded. Does not own: where it comes from (settings or
 * DATA_DIR/keys.json, layers/auth/Keys.ts), signing (AccessTokens) or sealing (layers/auth/Totp.ts).
 */
import { Context, type Redacted, Schema } from "effect"

/** An Ed25519 private key as a JWK (RFC 8037). */
export const PrivateJwk = Schema.Struct({
  kty: Schema.Literal("OKP"),
  crv: Schema.Literal("Ed25519"),
  x: Schema.String,
  d: Schema.String,
  kid: Schema.String.pipe(Schema.minLength(1))
})
export type PrivateJwk = typeof PrivateJwk.Type

export interface KeysShape {
  /** The first key signs; the others still verify (rotation). */
  readonly jwt: readonly [PrivateJwk, ...Array<PrivateJwk>]
  readonly mfaKey: Redacted.Redacted<Buffer>
}

export class Keys extends Context.Tag("app/Keys")<Keys, KeysShape>() {}
