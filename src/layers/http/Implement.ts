/**
 * One implementation per operation, served on both doors: `implement(Group, make)` gives the
 * HttpApi handlers of the group and the handlers of its Rpcs (`rpcsOf(Group)`), each calling the
 * same function with the caller's input (path, query and body merged, as the Rpc's payload) and
 * the request. On HTTP, a write (any method but GET) whose answer carries a `revision` also sets
 * `X-Permission-Revision`.
 */
import {
  type HttpApi,
  HttpApiBuilder,
  type HttpApiEndpoint,
  type HttpApiGroup,
  HttpApp,
  HttpServerRequest,
  HttpServerResponse
} from "@effect/platform"
import type { Rpc, RpcGroup } from "@effect/rpc"
import { Effect, type Layer, Option } from "effect"
import type { InputOf } from "../../rpc/Operation.ts"
import type { Authentication, CurrentMember, CurrentUser, OrgAuthorization, PlatformAdmin } from "../../rpc/Security.ts"
import type { RequestMeta } from "../../services/AuditLog.ts"
import { requestMeta } from "./RequestMeta.ts"

/** What a handler knows of the request besides its input. */
export interface Request {
  readonly meta: RequestMeta
  /** The HTTP request on the REST door (cookies, response headers); none on the RPC door. */
  readonly http: Option.Option<HttpServerRequest.HttpServerRequest>
}

type Handler<E, GroupError, R> =
  E extends HttpApiEndpoint.HttpApiEndpoint<
    infer _Name,
    infer _Method,
    infer _Path,
    infer _UrlParams,
    infer _Payload,
    infer _Headers,
    infer Success,
    infer Error,
    infer _R,
    infer _RE
  >
    ? (input: InputOf<E>, request: Request) => Effect.Effect<Success, Error | GroupError, R>
    : never

/** One handler per endpoint of group `G`, by endpoint name. */
export type Implementation<G, R> =
  G extends HttpApiGroup.HttpApiGroup<infer _Id, infer Endpoints, infer GroupError, infer _R, infer _TopLevel>
    ? { readonly [E in Endpoints as E["name"]]: Handler<E, GroupError, R> }
    : never

/** What the group's guards put in context for its handlers. */
type Provided<G> =
  G extends HttpApiGroup.HttpApiGroup<infer _Id, infer _Endpoints, infer _Error, infer R, infer _TopLevel>
    ?
        | (Authentication extends R ? CurrentUser : never)
        | (PlatformAdmin extends R ? CurrentUser : never)
        | (OrgAuthorization extends R ? CurrentMember : never)
    : never

const withRevisionHeader = (body: unknown) =>
  typeof body === "object" && body !== null && typeof (body as { revision?: unknown }).revision === "string"
    ? HttpApp.appendPreResponseHandler((_request, response) =>
        Effect.succeed(
          HttpServerResponse.setHeader(response, "x-permission-revision", (body as { revision: string }).revision)
        )
      ).pipe(Effect.as(body))
    : Effect.succeed(body)

type RpcsIn<Rpcs> = Rpcs extends RpcGroup.RpcGroup<infer R> ? R : never

type AnyHandler = (input: object, request: Request) => Effect.Effect<unknown, unknown, unknown>

/**
 * Both doors of group `G` from one implementation. The handlers may need what the group's guard
 * provides (`CurrentUser`, `CurrentMember`); anything else they need stays in the layers' type.
 */
export const implement = <
  ApiId extends string,
  Groups extends HttpApiGroup.HttpApiGroup.Any,
  G extends Groups,
  Rpcs extends RpcGroup.RpcGroup<any>,
  R,
  E,
  RMake
>(
  api: HttpApi.HttpApi<ApiId, Groups, any, any>,
  group: G,
  rpcs: Rpcs,
  make: Effect.Effect<Implementation<G, R>, E, RMake>
): {
  readonly http: Layer.Layer<HttpApiGroup.ApiGroup<ApiId, G["identifier"]>, E, RMake | Exclude<R, Provided<G>>>
  readonly rpc: Layer.Layer<Rpc.ToHandler<RpcsIn<Rpcs>>, E, RMake | Exclude<R, Provided<G>>>
} => {
  const g = group as unknown as HttpApiGroup.HttpApiGroup.AnyWithProps
  const names = Object.keys(g.endpoints)
  const group_ = HttpApiBuilder.group as (api: unknown, name: string, build: (handlers: any) => unknown) => unknown
  const http = group_(api, g.identifier, (handlers: any) =>
    Effect.map(make, (implementation) => {
      const byName = implementation as unknown as Record<string, AnyHandler>
      return names.reduce(
        (acc, name) =>
          acc.handle(name, ({ path, urlParams, payload }: Record<string, object | undefined>) =>
            Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
              const answer = byName[name]!(
                { ...path, ...urlParams, ...payload },
                { meta: requestMeta(request.headers), http: Option.some(request) }
              )
              return request.method === "GET" ? answer : Effect.flatMap(answer, withRevisionHeader)
            })
          ),
        handlers
      )
    })
  )
  const rpc = (rpcs as RpcGroup.RpcGroup<any>).toLayer(
    Effect.map(make, (implementation) => {
      const byName = implementation as unknown as Record<string, AnyHandler>
      return Object.fromEntries(
        names.map((name) => [
          `${g.identifier}.${name}`,
          (payload: object | undefined, { headers }: { headers: Readonly<Record<string, string | undefined>> }) =>
            byName[name]!(payload ?? {}, { meta: requestMeta(headers), http: Option.none() })
        ])
      )
    })
  )
  return { http, rpc } as never
}
