/**
 * Mfa: the account's TOTP second factor: enrolling an authenticator app, confirming it (which
 * hands out ten single-use recovery codes) and removing it.
 *
 * Owns: the rules (a code or the password guessed wrong too often waits; removal needs the
 * password and a code) and the mails and audit entries they cause. Does not own: asking for the
 * second factor at login (SignIn), transport (handlers in layers/http).
 */
import { Context, type Effect, type Redacted } from "effect"
import type { RecoveryCodes, TotpEnrollment } from "../rpc/Auth.ts"
import type { Conflict, InvalidInput, TooManyRequests } from "../rpc/Errors.ts"
import type { SignedIn } from "../rpc/Security.ts"
import type { RequestMeta } from "./AuditLog.ts"

export interface MfaShape {
  readonly enrollTotp: (user: SignedIn, meta: RequestMeta) => Effect.Effect<TotpEnrollment, Conflict>
  readonly confirmTotp: (
    user: SignedIn,
    code: string,
    meta: RequestMeta
  ) => Effect.Effect<RecoveryCodes, InvalidInput | Conflict | TooManyRequests>
  readonly disableTotp: (
    user: SignedIn,
    input: { readonly password: Redacted.Redacted<string>; readonly code: string },
    meta: RequestMeta
  ) => Effect.Effect<void, InvalidInput | Conflict | TooManyRequests>
}

export class Mfa extends Context.Tag("app/Mfa")<Mfa, MfaShape>() {}
