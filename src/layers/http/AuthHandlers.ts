/**
 * Authentication on both doors, from one implementation, and the bearer guards. Browsers may keep
 * the refresh token in an HttpOnly cookie instead of the body (HTTP only, from an allowed Origin).
 */
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Duration, Effect, Layer, Option, Redacted } from "effect"
import { AuthApi, Jwks, TokenPair } from "../../rpc/Auth.ts"
import { ServiceUnavailable, Unauthorized } from "../../rpc/Errors.ts"
import { Authentication, CurrentUser, RpcAuthentication, type SignedIn } from "../../rpc/Security.ts"
import { AccessTokens } from "../../services/AccessTokens.ts"
import { Accounts } from "../../services/Accounts.ts"
import { Mfa } from "../../services/Mfa.ts"
import { SignIn } from "../../services/SignIn.ts"
import { emailNotVerified, invalidToken } from "../auth/Credentials.ts"
import { makeUsers } from "../auth/Users.ts"
import { Settings } from "../Settings.ts"
import { implement } from "./Implement.ts"
import { bearerToken } from "./RequestMeta.ts"

const REFRESH_COOKIE = "lps_refresh"
const COOKIE_PATH = "/v1/auth"

/**
 * Cookie mode is for browsers on an allowed Origin only: a request without one (another site's
 * form, a script elsewhere) can neither read nor use the cookie.
 */
const CookieMode = Effect.gen(function* () {
  const allowed = new Set(yield* Settings.allowedOrigins)
  const maxAge = yield* Settings.refreshAbsoluteTtl
  const fromAllowedOrigin = (request: HttpServerRequest.HttpServerRequest) => {
    const origin = request.headers.origin
    return origin !== undefined && allowed.has(origin)
  }
  const setCookie = (value: string, age: Duration.Duration) =>
    HttpApp.appendPreResponseHandler((_request, response) =>
      HttpServerResponse.setCookie(response, REFRESH_COOKIE, value, {
        httpOnly: true,
        secure: true,
        sameSite: "strict",
        path: COOKIE_PATH,
        maxAge: age
      }).pipe(Effect.orElseSucceed(() => response))
    )
  return {
    fromAllowedOrigin,
    /** Hands a browser on an allowed Origin its new refresh token as a cookie as well. */
    issue: (request: HttpServerRequest.HttpServerRequest, result: unknown) =>
      fromAllowedOrigin(request) && result instanceof TokenPair ? setCookie(result.refreshToken, maxAge) : Effect.void,
    clear: (request: HttpServerRequest.HttpServerRequest) =>
      fromAllowedOrigin(request) ? setCookie("", Duration.zero) : Effect.void
  }
})

/**
 * The refresh token a request presents: the body's, else (HTTP, from an allowed Origin) the cookie's.
 */
const presentedRefreshToken = (
  cookies: Effect.Effect.Success<typeof CookieMode>,
  input: { readonly refreshToken?: string | undefined },
  http: Option.Option<HttpServerRequest.HttpServerRequest>
) => {
  if (input.refreshToken !== undefined) return input.refreshToken
  if (Option.isNone(http) || !cookies.fromAllowedOrigin(http.value)) return undefined
  const cookie = http.value.cookies[REFRESH_COOKIE]
  return cookie === "" ? undefined : cookie
}

export const AuthHandlers = implement(
  AuthApi,
  Effect.gen(function* () {
    const accounts = yield* Accounts
    const signIn = yield* SignIn
    const mfa = yield* Mfa
    const tokens = yield* AccessTokens
    const cookies = yield* CookieMode
    /** Hands a browser on an allowed Origin its new refresh token as a cookie as well. */
    const issued =
      (http: Option.Option<HttpServerRequest.HttpServerRequest>) =>
      <A, E, R>(result: Effect.Effect<A, E, R>) =>
        Option.isSome(http) ? Effect.tap(result, (value) => cookies.issue(http.value, value)) : result
    const cleared =
      (http: Option.Option<HttpServerRequest.HttpServerRequest>) =>
      <A, E, R>(result: Effect.Effect<A, E, R>) =>
        Option.isSome(http) ? Effect.zipLeft(result, cookies.clear(http.value)) : result
    return {
      register: (input, { meta }) => accounts.register(input, meta),
      login: (input, { meta, http }) => signIn.login(input, meta).pipe(issued(http)),
      loginMfa: (input, { meta, http }) => signIn.loginMfa(input, meta).pipe(issued(http)),
      refresh: (input, { meta, http }) => {
        const token = presentedRefreshToken(cookies, input, http)
        if (token === undefined) {
          return Effect.fail(new Unauthorized({ code: "invalid_token", message: "Send a refresh token" }))
        }
        return signIn.refresh(token, meta).pipe(issued(http))
      },
      forgotPassword: ({ email }, { meta }) => accounts.forgotPassword(email, meta),
      resetPassword: (input, { meta }) => accounts.resetPassword(input, meta),
      verifyEmail: ({ token }, { meta }) => accounts.verifyEmail(token, meta),
      jwks: (_, { http }) => {
        const keys = Effect.succeed(new Jwks({ keys: [...tokens.jwks.keys] }))
        if (Option.isNone(http)) return keys
        return Effect.zipRight(
          HttpApp.appendPreResponseHandler((_request, response) =>
            Effect.succeed(HttpServerResponse.setHeader(response, "cache-control", "public, max-age=300"))
          ),
          keys
        )
      },
      logout: (_, { meta, http }) =>
        Effect.flatMap(CurrentUser, (user) => signIn.logout(user, meta)).pipe(cleared(http)),
      logoutAll: (_, { meta, http }) =>
        Effect.flatMap(CurrentUser, (user) => signIn.logoutAll(user, meta)).pipe(cleared(http)),
      sessions: () => Effect.flatMap(CurrentUser, signIn.sessions),
      revokeSession: ({ id }, { meta }) => Effect.flatMap(CurrentUser, (user) => signIn.revokeSession(user, id, meta)),
      changePassword: (input, { meta }) =>
        Effect.flatMap(CurrentUser, (user) => accounts.changePassword(user, input, meta)),
      enrollTotp: (_, { meta }) => Effect.flatMap(CurrentUser, (user) => mfa.enrollTotp(user, meta)),
      confirmTotp: ({ code }, { meta }) => Effect.flatMap(CurrentUser, (user) => mfa.confirmTotp(user, code, meta)),
      disableTotp: (input, { meta }) => Effect.flatMap(CurrentUser, (user) => mfa.disableTotp(user, input, meta)),
      me: () => Effect.flatMap(CurrentUser, accounts.me)
    }
  })
)

/** Operations that, with REQUIRE_VERIFIED_EMAIL, need a verified address (login checks it itself). */
const NEEDS_VERIFIED_EMAIL = { rpc: new Set(["invitations.accept"]), http: new Set(["POST /v1/invitations/accept"]) }

/**
 * The signed-in guard of both doors: a valid, unrevoked token, and, where the operation needs it
 * and REQUIRE_VERIFIED_EMAIL is on, a verified address (the one case that reads the account).
 * An account deleted in the database ends its sessions (migration 0006), so its tokens are
 * revoked like any other; the guard does not read the account on every request.
 */
const makeSignedIn = Effect.gen(function* () {
  const signIn = yield* SignIn
  const users = yield* makeUsers
  const requireVerifiedEmail = yield* Settings.requireVerifiedEmail
  const verified = (user: SignedIn) =>
    Effect.gen(function* () {
      const standing = yield* users
        .standing(user.userId)
        .pipe(
          Effect.catchAll((cause) =>
            Effect.zipRight(
              Effect.logError("auth guard: cannot read the account; refusing", cause),
              Effect.fail(new ServiceUnavailable({ message: "Cannot check the session right now; try again" }))
            )
          )
        )
      if (Option.isNone(standing)) return yield* invalidToken
      if (!standing.value.emailVerified) return yield* emailNotVerified
      return user
    })
  return (token: Option.Option<string>, needsVerifiedEmail: boolean) =>
    requireVerifiedEmail && needsVerifiedEmail
      ? Effect.flatMap(signIn.authenticate(token), verified)
      : signIn.authenticate(token)
})

const pathOf = (url: string) => {
  const at = url.indexOf("?")
  return at === -1 ? url : url.slice(0, at)
}

export const AuthenticationLive = Layer.effect(
  Authentication,
  Effect.map(makeSignedIn, (check) => ({
    bearer: (token) =>
      Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
        check(
          Option.some(Redacted.value(token)),
          NEEDS_VERIFIED_EMAIL.http.has(`${request.method} ${pathOf(request.url)}`)
        )
      )
  }))
)

export const RpcAuthenticationLive = Layer.effect(
  RpcAuthentication,
  Effect.map(
    makeSignedIn,
    (check) =>
      ({ headers, rpc }) =>
        check(bearerToken(headers), NEEDS_VERIFIED_EMAIL.rpc.has(rpc._tag))
  )
)
