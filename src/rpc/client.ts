/**
 * A typed client for the RPC API, for TypeScript consumers:
 *
 *   const client = yield* ApiClient.make("http://localhost:3000/rpc", { accessToken: () => token })
 *   const tokens = yield* client.auth.login({ email, password: Redacted.make(password) })
 *   const me = yield* client.me()
 *
 * or provide `ApiClient.layer(url, options)` and `yield* ApiClient`. Typed failures arrive as the
 * same error classes the server uses (`Unauthorized`, `TooManyRequests`, …).
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as Headers from "@effect/platform/Headers"
import { RpcClient, RpcMiddleware, RpcSerialization } from "@effect/rpc"
import { Context, Effect, Layer } from "effect"
import { Rpcs } from "./Rpcs.ts"
import { RpcAuthentication, RpcOrgAuthorization, RpcPlatformAdmin } from "./Security.ts"

export interface ClientOptions {
  /** The current access token, read before each call; none means an anonymous call. */
  readonly accessToken?: () => string | undefined
}

const protocol = (url: string) =>
  RpcClient.layerProtocolHttp({ url }).pipe(Layer.provide([FetchHttpClient.layer, RpcSerialization.layerNdjson]))

const bearer = (options: ClientOptions) => {
  const addToken: RpcMiddleware.RpcMiddlewareClient = ({ request }) => {
    const token = options.accessToken?.()
    return Effect.succeed(
      token === undefined
        ? request
        : { ...request, headers: Headers.set(request.headers, "authorization", `Bearer ${token}`) }
    )
  }
  return Layer.mergeAll(
    RpcMiddleware.layerClient(RpcAuthentication, addToken),
    RpcMiddleware.layerClient(RpcOrgAuthorization, addToken),
    RpcMiddleware.layerClient(RpcPlatformAdmin, addToken)
  )
}

const makeClient = (url: string, options: ClientOptions = {}) =>
  RpcClient.make(Rpcs).pipe(Effect.provide(Layer.merge(protocol(url), bearer(options))))

export class ApiClient extends Context.Tag("app/ApiClient")<
  ApiClient,
  Effect.Effect.Success<ReturnType<typeof makeClient>>
>() {
  /** A client bound to the enclosing scope. */
  static readonly make = makeClient
  static readonly layer = (url: string, options?: ClientOptions) => Layer.scoped(ApiClient, makeClient(url, options))
}
