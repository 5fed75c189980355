/**
 * A typed client for the RPC API, for TypeScript consumers:
 *
 *   const client = yield* ApiClient.make("http://localhost:3000/rpc")
 *   const report = yield* client.health.ready()
 *
 * or provide `ApiClient.layer(url)` and `yield* ApiClient`.
 */
import { FetchHttpClient } from "@effect/platform"
import { RpcClient, RpcSerialization } from "@effect/rpc"
import { Context, Effect, Layer } from "effect"
import { Rpcs } from "./Rpcs.ts"

const protocol = (url: string) =>
  RpcClient.layerProtocolHttp({ url }).pipe(Layer.provide([FetchHttpClient.layer, RpcSerialization.layerNdjson]))

const makeClient = (url: string) => RpcClient.make(Rpcs).pipe(Effect.provide(protocol(url)))

export class ApiClient extends Context.Tag("app/ApiClient")<
  ApiClient,
  Effect.Effect.Success<ReturnType<typeof makeClient>>
>() {
  /** A client bound to the enclosing scope. */
  static readonly make = makeClient
  static readonly layer = (url: string) => Layer.scoped(ApiClient, makeClient(url))
}
