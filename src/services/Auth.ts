/**
 * Auth: accounts, login with MFA, refresh-token sessions, passwords and email verification.
 *
 * Owns: the rules (rate limits, lockout, rotation and reuse detection, one-time tokens) and the
 * mails and audit entries they cause. Does not own: transport (handlers in src/rpc), token
 * signing (AccessTokens) or hashing (PasswordHasher).
 */
import { Context, type Effect, type Option, type Redacted } from "effect"
import type { Accepted, Me, MfaChallenge, RecoveryCodes, SessionInfo, TokenPair, TotpEnrollment } from "../rpc/Auth.ts"
import type {
  Conflict,
  InvalidInput,
  NotFound,
  ServiceUnavailable,
  TooManyRequests,
  Unauthorized
} from "../rpc/Errors.ts"
import type { SignedIn } from "../rpc/Security.ts"
import type { RequestMeta } from "./AuditLog.ts"

type Password = Redacted.Redacted<string>

export interface AuthShape {
  readonly register: (
    input: { readonly email: string; readonly password: Password; readonly name: string },
    meta: RequestMeta
  ) => Effect.Effect<Accepted, InvalidInput | TooManyRequests>
  readonly login: (
    input: { readonly email: string; readonly password: Password },
    meta: RequestMeta
  ) => Effect.Effect<TokenPair | MfaChallenge, Unauthorized | TooManyRequests>
  readonly loginMfa: (
    input: { readonly mfaToken: string; readonly code: string },
    meta: RequestMeta
  ) => Effect.Effect<TokenPair, Unauthorized | TooManyRequests>
  readonly refresh: (
    refreshToken: string,
    meta: RequestMeta
  ) => Effect.Effect<TokenPair, Unauthorized | TooManyRequests>
  readonly forgotPassword: (email: string, meta: RequestMeta) => Effect.Effect<Accepted, TooManyRequests>
  readonly resetPassword: (
    input: { readonly token: string; readonly password: Password },
    meta: RequestMeta
  ) => Effect.Effect<void, Unauthorized | InvalidInput | TooManyRequests>
  readonly verifyEmail: (token: string, meta: RequestMeta) => Effect.Effect<void, Unauthorized | TooManyRequests>

  /** Verifies an access token and that its session is alive; the gate of every signed-in call. */
  readonly authenticate: (
    accessToken: Option.Option<string>
  ) => Effect.Effect<SignedIn, Unauthorized | ServiceUnavailable>

  readonly logout: (user: SignedIn, meta: RequestMeta) => Effect.Effect<void>
  readonly logoutAll: (user: SignedIn, meta: RequestMeta) => Effect.Effect<void>
  readonly sessions: (user: SignedIn) => Effect.Effect<ReadonlyArray<SessionInfo>>
  readonly revokeSession: (user: SignedIn, sessionId: string, meta: RequestMeta) => Effect.Effect<void, NotFound>
  readonly changePassword: (
    user: SignedIn,
    input: { readonly currentPassword: Password; readonly newPassword: Password },
    meta: RequestMeta
  ) => Effect.Effect<void, InvalidInput | TooManyRequests>
  readonly enrollTotp: (user: SignedIn, meta: RequestMeta) => Effect.Effect<TotpEnrollment, Conflict>
  readonly confirmTotp: (
    user: SignedIn,
    code: string,
    meta: RequestMeta
  ) => Effect.Effect<RecoveryCodes, InvalidInput | Conflict | TooManyRequests>
  readonly disableTotp: (
    user: SignedIn,
    input: { readonly password: Password; readonly code: string },
    meta: RequestMeta
  ) => Effect.Effect<void, InvalidInput | Conflict | TooManyRequests>
  readonly me: (user: SignedIn) => Effect.Effect<Me>
}

export class Auth extends Context.Tag("app/Auth")<Auth, AuthShape>() {}
