/**
 * SignIn: signing in and out, and the sessions it opens: login (with a second factor when the
 * account has one), refresh-token rotation, logout, the user's list of sessions, and
 * authenticating the bearer access token of every signed-in call.
 *
 * Owns: the rules (per-IP rate limits, per-account lockout, reuse of a rotated refresh token ends
 * the session) and the audit entries they cause. Does not own: the sessions table (Sessions),
 * signing tokens (AccessTokens), refusing tokens of ended sessions (Revocations), the TOTP factor
 * (Mfa), passwords and accounts (Accounts), transport (handlers in layers/http).
 */
import { Context, type Effect, type Option, type Redacted } from "effect"
import type { MfaChallenge, SessionInfo, TokenPair } from "../rpc/Auth.ts"
import type { NotFound, ServiceUnavailable, TooManyRequests, Unauthorized } from "../rpc/Errors.ts"
import type { SignedIn } from "../rpc/Security.ts"
import type { RequestMeta } from "./AuditLog.ts"

export interface SignInShape {
  readonly login: (
    input: { readonly email: string; readonly password: Redacted.Redacted<string> },
    meta: RequestMeta
  ) => Effect.Effect<TokenPair | MfaChallenge, Unauthorized | TooManyRequests>
  readonly loginMfa: (
    input: { readonly mfaToken: string; readonly code: string },
    meta: RequestMeta
  ) => Effect.Effect<TokenPair, Unauthorized | TooManyRequests>
  /** Rotates the refresh token; presenting a rotated one ends its whole session. */
  readonly refresh: (
    refreshToken: string,
    meta: RequestMeta
  ) => Effect.Effect<TokenPair, Unauthorized | TooManyRequests>

  /** Verifies an access token and that its session is alive; the gate of every signed-in call. */
  readonly authenticate: (
    accessToken: Option.Option<string>
  ) => Effect.Effect<SignedIn, Unauthorized | ServiceUnavailable>

  readonly logout: (user: SignedIn, meta: RequestMeta) => Effect.Effect<void>
  readonly logoutAll: (user: SignedIn, meta: RequestMeta) => Effect.Effect<void>
  readonly sessions: (user: SignedIn) => Effect.Effect<ReadonlyArray<SessionInfo>>
  readonly revokeSession: (user: SignedIn, sessionId: string, meta: RequestMeta) => Effect.Effect<void, NotFound>
}

export class SignIn extends Context.Tag("app/SignIn")<SignIn, SignInShape>() {}
