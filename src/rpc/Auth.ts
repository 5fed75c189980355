/** Accounts, login, sessions, passwords, MFA and the public keys: the contract of both doors. */
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import { Schema } from "effect"
import { Conflict, InvalidInput, NotFound, ServiceUnavailable, TooManyRequests, Unauthorized } from "./Errors.ts"
import { canonicalId } from "./Ids.ts"
import { operations, rpcsOf } from "./Operation.ts"
import { Authentication } from "./Security.ts"
import { storable } from "./Text.ts"

const EmailText = Schema.String.pipe(
  storable(),
  Schema.maxLength(254),
  Schema.pattern(/^[^\s@]+@[^\s@]+\.[^\s@]+$/, { message: () => "must be an email address" })
)

/**
 * An email address, decoded to its one key (S49): lowercase, Unicode NFC, so `Ann@Example.com`
 * and a decomposed `é` name the same account as their canonical forms. Encoded as it is.
 */
export const Email = Schema.transform(EmailText.annotations({ identifier: "Email" }), EmailText, {
  strict: true,
  decode: (email) => email.toLowerCase().normalize("NFC"),
  encode: (email) => email
})

/** 8 to 128 characters (code points), any characters, compared exactly as sent. */
export const Password = Schema.Redacted(
  Schema.String.pipe(
    Schema.filter((s) => [...s].length >= 8, { message: () => "must have at least 8 characters" }),
    Schema.filter((s) => [...s].length <= 128, { message: () => "must have at most 128 characters" })
  )
).annotations({ identifier: "Password" })

/** A password given to prove who you are: only a length cap, so old short passwords still work. */
export const CurrentPassword = Schema.Redacted(Schema.String.pipe(Schema.maxLength(1024)))

const Token = Schema.String.pipe(storable(), Schema.minLength(1), Schema.maxLength(512))
const Code = Schema.String.pipe(Schema.minLength(6), Schema.maxLength(64))

export const Register = Schema.Struct({
  email: Email,
  password: Password,
  name: Schema.Trim.pipe(storable(), Schema.minLength(1), Schema.maxLength(200))
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

const SessionId = canonicalId("SessionId")

// Unguarded, so no guard declares the 503 a lost database answers (both doors): the family does.
const open = operations({ prefix: "/v1/auth", errors: [ServiceUnavailable] })
const signedIn = operations({ prefix: "/v1/auth", params: { id: SessionId }, guard: Authentication })
const NoContent = HttpApiSchema.NoContent
const limited = [TooManyRequests] as const
const refused = [Unauthorized, TooManyRequests] as const
const invalid = [InvalidInput, TooManyRequests] as const

export class AuthApi extends HttpApiGroup.make("auth")
  .add(open.post("register", "/register", Accepted, { payload: Register, status: 202, errors: invalid }))
  .add(open.post("login", "/login", LoginResult, { payload: Login, errors: refused }))
  .add(open.post("loginMfa", "/login/mfa", TokenPair, { payload: LoginMfa, errors: refused }))
  .add(open.post("refresh", "/refresh", TokenPair, { payload: Refresh, errors: refused }))
  .add(
    open.post("forgotPassword", "/password/forgot", Accepted, { payload: ForgotPassword, status: 202, errors: limited })
  )
  .add(
    open.post("resetPassword", "/password/reset", NoContent, {
      payload: ResetPassword,
      errors: [Unauthorized, ...invalid]
    })
  )
  .add(open.post("verifyEmail", "/email/verify", NoContent, { payload: VerifyEmail, errors: refused }))
  .add(operations({}).get("jwks", "/.well-known/jwks.json", Jwks))
  .add(signedIn.post("logout", "/logout", NoContent))
  .add(signedIn.post("logoutAll", "/logout-all", NoContent))
  .add(signedIn.get("sessions", "/sessions", Schema.Array(SessionInfo)))
  .add(signedIn.del("revokeSession", "/sessions/:id", NoContent, { errors: [NotFound] }))
  .add(signedIn.post("changePassword", "/password/change", NoContent, { payload: ChangePassword, errors: invalid }))
  .add(signedIn.post("enrollTotp", "/mfa/totp/enroll", TotpEnrollment, { errors: [Conflict] }))
  .add(
    signedIn.post("confirmTotp", "/mfa/totp/confirm", RecoveryCodes, {
      payload: MfaCode,
      errors: [...invalid, Conflict]
    })
  )
  .add(
    signedIn.post("disableTotp", "/mfa/totp/disable", NoContent, {
      payload: DisableMfa,
      errors: [...invalid, Conflict]
    })
  )
  .add(operations({ guard: Authentication }).get("me", "/v1/me", Me))
  .annotate(OpenApi.Title, "Authentication") {}

export const AuthRpcs = rpcsOf(AuthApi)
