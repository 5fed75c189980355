/**
 * Accounts: a person's account: registering, verifying the email address, the profile (`me`),
 * and the password (forgotten, reset, changed).
 *
 * Owns: the rules around them (one-time tokens for verification and reset, the common-password
 * refusal, ending sessions after a password change) and the mails and audit entries they cause;
 * creating the platform administrator from ADMIN_EMAIL at start. Does not own: signing in and
 * sessions (SignIn, Sessions), the second factor (Mfa), transport (handlers in layers/http).
 */
import { Context, type Effect, type Redacted } from "effect"
import type { Accepted, Me } from "../rpc/Auth.ts"
import type { InvalidInput, TooManyRequests, Unauthorized } from "../rpc/Errors.ts"
import type { SignedIn } from "../rpc/Security.ts"
import type { RequestMeta } from "./AuditLog.ts"

type Password = Redacted.Redacted<string>

export interface AccountsShape {
  /** Answers the same whether or not the address is taken; the mail differs. */
  readonly register: (
    input: { readonly email: string; readonly password: Password; readonly name: string },
    meta: RequestMeta
  ) => Effect.Effect<Accepted, InvalidInput | TooManyRequests>
  readonly verifyEmail: (token: string, meta: RequestMeta) => Effect.Effect<void, Unauthorized | TooManyRequests>
  /** Always accepted; mails a reset token when the address belongs to an enabled account. */
  readonly forgotPassword: (email: string, meta: RequestMeta) => Effect.Effect<Accepted, TooManyRequests>
  /** Sets the password with a reset token and ends every session of the account; no sign-in. */
  readonly resetPassword: (
    input: { readonly token: string; readonly password: Password },
    meta: RequestMeta
  ) => Effect.Effect<void, Unauthorized | InvalidInput | TooManyRequests>
  /** Needs the current password; ends the account's other sessions. */
  readonly changePassword: (
    user: SignedIn,
    input: { readonly currentPassword: Password; readonly newPassword: Password },
    meta: RequestMeta
  ) => Effect.Effect<void, InvalidInput | TooManyRequests>
  readonly me: (user: SignedIn) => Effect.Effect<Me, Unauthorized>
}

export class Accounts extends Context.Tag("app/Accounts")<Accounts, AccountsShape>() {}
