/** Accounts, login, sessions, passwords, MFA and the public keys: the contract of both doors. */
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Conflict, InvalidInput, NotFound, ServiceUnavailable, TooManyRequests, Unauthorized } from "./Errors.ts"
import { rpcsOf } from "./Operation.ts"
import { Authentication } from "./Security.ts"

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
    HttpApiEndpoint.post("register", "/v1/auth/register")
      .setPayload(Register)
      .addSuccess(Accepted, { status: 202 })
      .addError(InvalidInput)
      .addError(TooManyRequests)
      .annotate(OpenApi.Description, "The same answer whether or not the email is taken; the mail tells them apart.")
  )
  .add(
    HttpApiEndpoint.post("login", "/v1/auth/login")
      .setPayload(Login)
      .addSuccess(LoginResult)
      .addError(Unauthorized)
      .addError(TooManyRequests)
      .addError(ServiceUnavailable)
      .annotate(
        OpenApi.Description,
        "Signs in with email and password: a token pair, or `mfaRequired` with an `mfaToken` to finish with `loginMfa`. Repeated failures lock the account for a while (429 with `Retry-After`)."
      )
  )
  .add(
    HttpApiEndpoint.post("loginMfa", "/v1/auth/login/mfa")
      .setPayload(LoginMfa)
      .addSuccess(TokenPair)
      .addError(Unauthorized)
      .addError(TooManyRequests)
      .annotate(
        OpenApi.Description,
        "Finishes a sign-in that needs a second factor: the `mfaToken` from `login` and a TOTP or recovery code."
      )
  )
  .add(
    HttpApiEndpoint.post("refresh", "/v1/auth/refresh")
      .setPayload(Refresh)
      .addSuccess(TokenPair)
      .addError(Unauthorized)
      .addError(TooManyRequests)
      .annotate(OpenApi.Description, "Rotates the refresh token (body or the HttpOnly cookie); the old one is dead.")
  )
  .add(
    HttpApiEndpoint.post("forgotPassword", "/v1/auth/password/forgot")
      .setPayload(ForgotPassword)
      .addSuccess(Accepted, { status: 202 })
      .addError(TooManyRequests)
      .annotate(
        OpenApi.Description,
        "Mails a single-use reset link if the address has an account; the answer is the same either way."
      )
  )
  .add(
    HttpApiEndpoint.post("resetPassword", "/v1/auth/password/reset")
      .setPayload(ResetPassword)
      .addSuccess(HttpApiSchema.NoContent)
      .addError(Unauthorized)
      .addError(InvalidInput)
      .addError(TooManyRequests)
      .annotate(
        OpenApi.Description,
        "Sets a new password with the mailed token; every session of the account ends, and nobody is signed in."
      )
  )
  .add(
    HttpApiEndpoint.post("verifyEmail", "/v1/auth/email/verify")
      .setPayload(VerifyEmail)
      .addSuccess(HttpApiSchema.NoContent)
      .addError(Unauthorized)
      .addError(TooManyRequests)
      .annotate(OpenApi.Description, "Confirms the email address with the mailed token.")
  )
  .add(
    HttpApiEndpoint.get("jwks", "/.well-known/jwks.json")
      .addSuccess(Jwks)
      .annotate(OpenApi.Description, "Public Ed25519 keys that verify access tokens (EdDSA).")
  )
  .add(
    HttpApiEndpoint.post("logout", "/v1/auth/logout")
      .addSuccess(HttpApiSchema.NoContent)
      .middleware(Authentication)
      .annotate(
        OpenApi.Description,
        "Ends this session: its access and refresh tokens stop working at once on every node."
      )
  )
  .add(
    HttpApiEndpoint.post("logoutAll", "/v1/auth/logout-all")
      .addSuccess(HttpApiSchema.NoContent)
      .middleware(Authentication)
      .annotate(OpenApi.Description, "Ends every session of the account, this one included.")
  )
  .add(
    HttpApiEndpoint.get("sessions", "/v1/auth/sessions")
      .addSuccess(Schema.Array(SessionInfo))
      .middleware(Authentication)
      .annotate(OpenApi.Description, "The account's live sessions (devices), this one marked `current`.")
  )
  .add(
    HttpApiEndpoint.del("revokeSession", "/v1/auth/sessions/:id")
      .setPath(Schema.Struct({ id: SessionId }))
      .addSuccess(HttpApiSchema.NoContent)
      .addError(NotFound)
      .middleware(Authentication)
      .annotate(OpenApi.Description, "Ends one of the account's sessions.")
  )
  .add(
    HttpApiEndpoint.post("changePassword", "/v1/auth/password/change")
      .setPayload(ChangePassword)
      .addSuccess(HttpApiSchema.NoContent)
      .addError(InvalidInput)
      .addError(TooManyRequests)
      .middleware(Authentication)
      .annotate(OpenApi.Description, "Changes the password (the current one is required); every other session ends.")
  )
  .add(
    HttpApiEndpoint.post("enrollTotp", "/v1/auth/mfa/totp/enroll")
      .addSuccess(TotpEnrollment)
      .addError(Conflict)
      .middleware(Authentication)
      .annotate(
        OpenApi.Description,
        "Starts TOTP enrolment: a secret and an otpauth URL for an authenticator app; confirm it with a code."
      )
  )
  .add(
    HttpApiEndpoint.post("confirmTotp", "/v1/auth/mfa/totp/confirm")
      .setPayload(MfaCode)
      .addSuccess(RecoveryCodes)
      .addError(InvalidInput)
      .addError(Conflict)
      .addError(TooManyRequests)
      .middleware(Authentication)
      .annotate(
        OpenApi.Description,
        "Confirms TOTP enrolment with a code; answers ten single-use recovery codes, shown once."
      )
  )
  .add(
    HttpApiEndpoint.post("disableTotp", "/v1/auth/mfa/totp/disable")
      .setPayload(DisableMfa)
      .addSuccess(HttpApiSchema.NoContent)
      .addError(InvalidInput)
      .addError(Conflict)
      .addError(TooManyRequests)
      .middleware(Authentication)
      .annotate(OpenApi.Description, "Turns TOTP off; needs the password and a current code.")
  )
  .add(
    HttpApiEndpoint.get("me", "/v1/me")
      .addSuccess(Me)
      .middleware(Authentication)
      .annotate(OpenApi.Description, "The signed-in user.")
  )
  .annotate(OpenApi.Title, "Authentication") {}

export const AuthRpcs = rpcsOf(AuthApi)
