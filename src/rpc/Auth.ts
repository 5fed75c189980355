/** Accounts, login, sessions, passwords, MFA and the public keys: the contract of both doors. */
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { Conflict, InvalidInput, NotFound, ServiceUnavailable, TooManyRequests, Unauthorized } from "./Errors.ts"
import { Authentication, RpcAuthentication } from "./Security.ts"

export const Email = Schema.String.pipe(
  Schema.maxLength(254),
  Schema.pattern(/^[^\s@]+@[^\s@]+\.[^\s@]+$/, { message: () => "must be an email address" })
).annotations({ identifier: "Email" })

/** 8 to 128 characters (code points), any characters, compared exactly as sent. */
export const Password = Schema.Redacted(
  Schema.String.pipe(
    Schema.filter((s) => [...s].length >= 8, { message: () => "must have at least 8 characters" }),
    Schema.filter((s) => [...s].length <= 128, { message: () => "must have at most 128 characters" })
  )
).annotations({ identifier: "Password" })

/** A password given to prove who you are: only a length cap, so old short passwords still work. */
export const CurrentPassword = Schema.Redacted(Schema.String.pipe(Schema.maxLength(1024)))

const Token = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(512))
const Code = Schema.String.pipe(Schema.minLength(6), Schema.maxLength(64))

export const Register = Schema.Struct({
  email: Email,
  password: Password,
  name: Schema.Trim.pipe(Schema.minLength(1), Schema.maxLength(200))
})
export const Login = Schema.Struct({ email: Email, password: CurrentPassword })
export const LoginMfa = Schema.Struct({ mfaToken: Token, code: Code })
export const Refresh = Schema.Struct({ refreshToken: Schema.optional(Token) })
export const ForgotPassword = Schema.Struct({ email: Email })
export const ResetPassword = Schema.Struct({ token: Token, password: Password })
export const ChangePassword = Schema.Struct({ currentPassword: CurrentPassword, newPassword: Password })
export const VerifyEmail = Schema.Struct({ token: Token })
export const MfaCode = Schema.Struct({ code: Code })
export const DisableMfa = Schema.Struct({ password: CurrentPassword, code: Code })

export class Accepted extends Schema.Class<Accepted>("Accepted")({
  status: Schema.Literal("pending_verification", "accepted")
}) {}

export class TokenPair extends Schema.Class<TokenPair>("TokenPair")({
  accessToken: Schema.String,
  refreshToken: Schema.String,
  tokenType: Schema.Literal("Bearer"),
  /** Seconds until the access token expires. */
  expiresIn: Schema.Int,
  sessionId: Schema.String
}) {}

export class MfaChallenge extends Schema.Class<MfaChallenge>("MfaChallenge")({
  mfaRequired: Schema.Literal(true),
  mfaToken: Schema.String
}) {}

export const LoginResult = Schema.Union(TokenPair, MfaChallenge)

export class SessionInfo extends Schema.Class<SessionInfo>("SessionInfo")({
  id: Schema.String,
  current: Schema.Boolean,
  createdAt: Schema.DateTimeUtc,
  lastUsedAt: Schema.DateTimeUtc,
  expiresAt: Schema.DateTimeUtc,
  ip: Schema.NullOr(Schema.String),
  userAgent: Schema.NullOr(Schema.String)
}) {}

export class TotpEnrollment extends Schema.Class<TotpEnrollment>("TotpEnrollment")({
  secret: Schema.String,
  otpauthUrl: Schema.String
}) {}

export class RecoveryCodes extends Schema.Class<RecoveryCodes>("RecoveryCodes")({
  recoveryCodes: Schema.Array(Schema.String)
}) {}

export class Me extends Schema.Class<Me>("Me")({
  id: Schema.String,
  email: Schema.String,
  name: Schema.String,
  emailVerified: Schema.Boolean,
  mfaEnabled: Schema.Boolean,
  createdAt: Schema.DateTimeUtc
}) {}

export class Jwks extends Schema.Class<Jwks>("Jwks")({
  keys: Schema.Array(
    Schema.Struct({
      kty: Schema.String,
      crv: Schema.String,
      x: Schema.String,
      kid: Schema.String,
      alg: Schema.Literal("EdDSA"),
      use: Schema.Literal("sig")
    })
  )
}) {}

const SessionId = Schema.UUID.annotations({ identifier: "SessionId" })

export class AuthApi extends HttpApiGroup.make("auth")
  .add(
    HttpApiEndpoint.post("register", "/register")
      .setPayload(Register)
      .addSuccess(Accepted, { status: 202 })
      .addError(InvalidInput)
      .addError(TooManyRequests)
      .annotate(OpenApi.Description, "The same answer whether or not the email is taken; the mail tells them apart.")
  )
  .add(
    HttpApiEndpoint.post("login", "/login")
      .setPayload(Login)
      .addSuccess(LoginResult)
      .addError(Unauthorized)
      .addError(TooManyRequests)
      .addError(ServiceUnavailable)
  )
  .add(
    HttpApiEndpoint.post("loginMfa", "/login/mfa")
      .setPayload(LoginMfa)
      .addSuccess(TokenPair)
      .addError(Unauthorized)
      .addError(TooManyRequests)
  )
  .add(
    HttpApiEndpoint.post("refresh", "/refresh")
      .setPayload(Refresh)
      .addSuccess(TokenPair)
      .addError(Unauthorized)
      .addError(TooManyRequests)
      .annotate(OpenApi.Description, "Rotates the refresh token (body or the HttpOnly cookie); the old one is dead.")
  )
  .add(
    HttpApiEndpoint.post("forgotPassword", "/password/forgot")
      .setPayload(ForgotPassword)
      .addSuccess(Accepted, { status: 202 })
      .addError(TooManyRequests)
  )
  .add(
    HttpApiEndpoint.post("resetPassword", "/password/reset")
      .setPayload(ResetPassword)
      .addSuccess(HttpApiSchema.NoContent)
      .addError(Unauthorized)
      .addError(InvalidInput)
      .addError(TooManyRequests)
  )
  .add(
    HttpApiEndpoint.post("verifyEmail", "/email/verify")
      .setPayload(VerifyEmail)
      .addSuccess(HttpApiSchema.NoContent)
      .addError(Unauthorized)
      .addError(TooManyRequests)
  )
  .prefix("/v1/auth")
  .annotate(OpenApi.Title, "Authentication") {}

export class SessionApi extends HttpApiGroup.make("session")
  .add(HttpApiEndpoint.post("logout", "/logout").addSuccess(HttpApiSchema.NoContent))
  .add(HttpApiEndpoint.post("logoutAll", "/logout-all").addSuccess(HttpApiSchema.NoContent))
  .add(HttpApiEndpoint.get("sessions", "/sessions").addSuccess(Schema.Array(SessionInfo)))
  .add(
    HttpApiEndpoint.del("revokeSession", "/sessions/:id")
      .setPath(Schema.Struct({ id: SessionId }))
      .addSuccess(HttpApiSchema.NoContent)
      .addError(NotFound)
  )
  .add(
    HttpApiEndpoint.post("changePassword", "/password/change")
      .setPayload(ChangePassword)
      .addSuccess(HttpApiSchema.NoContent)
      .addError(InvalidInput)
      .addError(TooManyRequests)
  )
  .add(HttpApiEndpoint.post("enrollTotp", "/mfa/totp/enroll").addSuccess(TotpEnrollment).addError(Conflict))
  .add(
    HttpApiEndpoint.post("confirmTotp", "/mfa/totp/confirm")
      .setPayload(MfaCode)
      .addSuccess(RecoveryCodes)
      .addError(InvalidInput)
      .addError(Conflict)
      .addError(TooManyRequests)
  )
  .add(
    HttpApiEndpoint.post("disableTotp", "/mfa/totp/disable")
      .setPayload(DisableMfa)
      .addSuccess(HttpApiSchema.NoContent)
      .addError(InvalidInput)
      .addError(Conflict)
      .addError(TooManyRequests)
  )
  .prefix("/v1/auth")
  .middleware(Authentication)
  .annotate(OpenApi.Title, "Sessions and MFA") {}

export class MeApi extends HttpApiGroup.make("me")
  .add(HttpApiEndpoint.get("me", "/v1/me").addSuccess(Me))
  .middleware(Authentication)
  .annotate(OpenApi.Title, "Me") {}

export class JwksApi extends HttpApiGroup.make("jwks")
  .add(
    HttpApiEndpoint.get("jwks", "/.well-known/jwks.json")
      .addSuccess(Jwks)
      .annotate(OpenApi.Description, "Public Ed25519 keys that verify access tokens (EdDSA).")
  )
  .annotate(OpenApi.Title, "Keys") {}

const publicErrors = Schema.Union(Unauthorized, TooManyRequests, InvalidInput, ServiceUnavailable)
const signedIn = { middleware: RpcAuthentication } as const

export class AuthRpcs extends RpcGroup.make(
  Rpc.make("auth.register", { payload: Register, success: Accepted, error: publicErrors }),
  Rpc.make("auth.login", { payload: Login, success: LoginResult, error: publicErrors }),
  Rpc.make("auth.loginMfa", { payload: LoginMfa, success: TokenPair, error: publicErrors }),
  Rpc.make("auth.refresh", { payload: Refresh, success: TokenPair, error: publicErrors }),
  Rpc.make("auth.forgotPassword", { payload: ForgotPassword, success: Accepted, error: publicErrors }),
  Rpc.make("auth.resetPassword", { payload: ResetPassword, error: publicErrors }),
  Rpc.make("auth.verifyEmail", { payload: VerifyEmail, error: publicErrors }),
  Rpc.make("auth.jwks", { success: Jwks })
) {}

const sessionErrors = Schema.Union(NotFound, InvalidInput, Conflict, TooManyRequests)

export class SessionRpcs extends RpcGroup.make(
  Rpc.make("auth.logout", { error: sessionErrors }),
  Rpc.make("auth.logoutAll", { error: sessionErrors }),
  Rpc.make("auth.sessions", { success: Schema.Array(SessionInfo), error: sessionErrors }),
  Rpc.make("auth.revokeSession", { payload: { id: SessionId }, error: sessionErrors }),
  Rpc.make("auth.changePassword", { payload: ChangePassword, error: sessionErrors }),
  Rpc.make("auth.enrollTotp", { success: TotpEnrollment, error: sessionErrors }),
  Rpc.make("auth.confirmTotp", { payload: MfaCode, success: RecoveryCodes, error: sessionErrors }),
  Rpc.make("auth.disableTotp", { payload: DisableMfa, error: sessionErrors }),
  Rpc.make("me", { success: Me, error: sessionErrors })
).middleware(signedIn.middleware) {}
