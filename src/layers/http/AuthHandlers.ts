/**
 * Thin adapters from both doors to the Auth service: the same operation, schemas and errors on
 * HttpApi and RPC. Browsers may keep the refresh token in an HttpOnly cookie instead of the body.
 */
import { HttpApiBuilder, HttpApp, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Duration, Effect, Layer, Option, Redacted } from "effect"
import { Api } from "../../rpc/Api.ts"
import { AuthRpcs, Jwks, SessionRpcs, TokenPair } from "../../rpc/Auth.ts"
import { Unauthorized } from "../../rpc/Errors.ts"
import { Authentication, CurrentUser, RpcAuthentication } from "../../rpc/Security.ts"
import { AccessTokens } from "../../services/AccessTokens.ts"
import { Auth } from "../../services/Auth.ts"
import { Settings } from "../Settings.ts"
import { bearerToken, requestMeta } from "./RequestMeta.ts"

const REFRESH_COOKIE = "lps_refresh"
const COOKIE_PATH = "/v1/auth"

const currentRequest = Effect.map(HttpServerRequest.HttpServerRequest, (request) => ({
  request,
  meta: requestMeta(request.headers)
}))

const jwks = Effect.map(AccessTokens, (tokens) => new Jwks({ keys: [...tokens.jwks.keys] }))

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

export const AuthHttpLive = HttpApiBuilder.group(Api, "auth", (handlers) =>
  Effect.gen(function* () {
    const auth = yield* Auth
    const cookies = yield* CookieMode
    return handlers
      .handle("register", ({ payload }) => Effect.flatMap(currentRequest, ({ meta }) => auth.register(payload, meta)))
      .handle("login", ({ payload }) =>
        Effect.flatMap(currentRequest, ({ request, meta }) =>
          auth.login(payload, meta).pipe(Effect.tap((result) => cookies.issue(request, result)))
        )
      )
      .handle("loginMfa", ({ payload }) =>
        Effect.flatMap(currentRequest, ({ request, meta }) =>
          auth.loginMfa(payload, meta).pipe(Effect.tap((result) => cookies.issue(request, result)))
        )
      )
      .handle("refresh", ({ payload }) =>
        Effect.flatMap(currentRequest, ({ request, meta }) => {
          const cookie = cookies.fromAllowedOrigin(request) ? request.cookies[REFRESH_COOKIE] : undefined
          const token = payload.refreshToken ?? (cookie === "" ? undefined : cookie)
          if (token === undefined) {
            return Effect.fail(new Unauthorized({ code: "invalid_token", message: "Send a refresh token" }))
          }
          return auth.refresh(token, meta).pipe(Effect.tap((result) => cookies.issue(request, result)))
        })
      )
      .handle("forgotPassword", ({ payload }) =>
        Effect.flatMap(currentRequest, ({ meta }) => auth.forgotPassword(payload.email, meta))
      )
      .handle("resetPassword", ({ payload }) =>
        Effect.flatMap(currentRequest, ({ meta }) => auth.resetPassword(payload, meta))
      )
      .handle("verifyEmail", ({ payload }) =>
        Effect.flatMap(currentRequest, ({ meta }) => auth.verifyEmail(payload.token, meta))
      )
  })
)

export const SessionHttpLive = HttpApiBuilder.group(Api, "session", (handlers) =>
  Effect.gen(function* () {
    const auth = yield* Auth
    const cookies = yield* CookieMode
    const signedIn = Effect.zip(CurrentUser, currentRequest)
    return handlers
      .handle("logout", () =>
        Effect.flatMap(signedIn, ([user, { request, meta }]) =>
          auth.logout(user, meta).pipe(Effect.zipRight(cookies.clear(request)))
        )
      )
      .handle("logoutAll", () =>
        Effect.flatMap(signedIn, ([user, { request, meta }]) =>
          auth.logoutAll(user, meta).pipe(Effect.zipRight(cookies.clear(request)))
        )
      )
      .handle("sessions", () => Effect.flatMap(CurrentUser, auth.sessions))
      .handle("revokeSession", ({ path }) =>
        Effect.flatMap(signedIn, ([user, { meta }]) => auth.revokeSession(user, path.id, meta))
      )
      .handle("changePassword", ({ payload }) =>
        Effect.flatMap(signedIn, ([user, { meta }]) => auth.changePassword(user, payload, meta))
      )
      .handle("enrollTotp", () => Effect.flatMap(signedIn, ([user, { meta }]) => auth.enrollTotp(user, meta)))
      .handle("confirmTotp", ({ payload }) =>
        Effect.flatMap(signedIn, ([user, { meta }]) => auth.confirmTotp(user, payload.code, meta))
      )
      .handle("disableTotp", ({ payload }) =>
        Effect.flatMap(signedIn, ([user, { meta }]) => auth.disableTotp(user, payload, meta))
      )
  })
)

export const MeHttpLive = HttpApiBuilder.group(Api, "me", (handlers) =>
  Effect.map(Auth, (auth) => handlers.handle("me", () => Effect.flatMap(CurrentUser, auth.me)))
)

export const JwksHttpLive = HttpApiBuilder.group(Api, "jwks", (handlers) =>
  Effect.succeed(
    handlers.handle("jwks", () =>
      Effect.zipRight(
        HttpApp.appendPreResponseHandler((_request, response) =>
          Effect.succeed(HttpServerResponse.setHeader(response, "cache-control", "public, max-age=300"))
        ),
        jwks
      )
    )
  )
)

export const AuthenticationLive = Layer.effect(
  Authentication,
  Effect.map(Auth, (auth) => ({
    bearer: (token) => auth.authenticate(Option.some(Redacted.value(token)))
  }))
)

export const RpcAuthenticationLive = Layer.effect(
  RpcAuthentication,
  Effect.map(
    Auth,
    (auth) =>
      ({ headers }) =>
        auth.authenticate(bearerToken(headers))
  )
)

export const AuthRpcLive = AuthRpcs.toLayer(
  Effect.map(Auth, (auth) =>
    AuthRpcs.of({
      "auth.register": (payload, { headers }) => auth.register(payload, requestMeta(headers)),
      "auth.login": (payload, { headers }) => auth.login(payload, requestMeta(headers)),
      "auth.loginMfa": (payload, { headers }) => auth.loginMfa(payload, requestMeta(headers)),
      "auth.refresh": (payload, { headers }) =>
        payload.refreshToken === undefined
          ? Effect.fail(new Unauthorized({ code: "invalid_token", message: "Send a refresh token" }))
          : auth.refresh(payload.refreshToken, requestMeta(headers)),
      "auth.forgotPassword": (payload, { headers }) => auth.forgotPassword(payload.email, requestMeta(headers)),
      "auth.resetPassword": (payload, { headers }) => auth.resetPassword(payload, requestMeta(headers)),
      "auth.verifyEmail": (payload, { headers }) => auth.verifyEmail(payload.token, requestMeta(headers)),
      "auth.jwks": () => jwks
    })
  )
)

export const SessionRpcLive = SessionRpcs.toLayer(
  Effect.map(Auth, (auth) =>
    SessionRpcs.of({
      "auth.logout": (_, { headers }) => Effect.flatMap(CurrentUser, (user) => auth.logout(user, requestMeta(headers))),
      "auth.logoutAll": (_, { headers }) =>
        Effect.flatMap(CurrentUser, (user) => auth.logoutAll(user, requestMeta(headers))),
      "auth.sessions": () => Effect.flatMap(CurrentUser, auth.sessions),
      "auth.revokeSession": ({ id }, { headers }) =>
        Effect.flatMap(CurrentUser, (user) => auth.revokeSession(user, id, requestMeta(headers))),
      "auth.changePassword": (payload, { headers }) =>
        Effect.flatMap(CurrentUser, (user) => auth.changePassword(user, payload, requestMeta(headers))),
      "auth.enrollTotp": (_, { headers }) =>
        Effect.flatMap(CurrentUser, (user) => auth.enrollTotp(user, requestMeta(headers))),
      "auth.confirmTotp": ({ code }, { headers }) =>
        Effect.flatMap(CurrentUser, (user) => auth.confirmTotp(user, code, requestMeta(headers))),
      "auth.disableTotp": (payload, { headers }) =>
        Effect.flatMap(CurrentUser, (user) => auth.disableTotp(user, payload, requestMeta(headers))),
      me: () => Effect.flatMap(CurrentUser, auth.me)
    })
  )
)
