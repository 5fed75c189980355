/**
 * Auth: the whole of authentication behind one tag, for the callers that still use it (the HTTP
 * and RPC handlers, the guards). It adds nothing: each method is the one of the service that owns
 * the job, and new code should depend on that service instead:
 * - Accounts: register, verifyEmail, forgotPassword, resetPassword, changePassword, me;
 * - SignIn: login, loginMfa, refresh, authenticate, logout, logoutAll, sessions, revokeSession;
 * - Mfa: enrollTotp, confirmTotp, disableTotp.
 */
import { Context } from "effect"
import type { AccountsShape } from "./Accounts.ts"
import type { MfaShape } from "./Mfa.ts"
import type { SignInShape } from "./SignIn.ts"

export interface AuthShape extends AccountsShape, SignInShape, MfaShape {}

export class Auth extends Context.Tag("app/Auth")<Auth, AuthShape>() {}
