/**
 * One implementation per operation, served on both doors: `implement(Group, make)` gives the
 * HttpApi handlers of the group and the handlers of its Rpcs (`rpcsOf(Group)`), each calling the
 * same function with the caller's input (path, query and body merged, as the Rpc's payload) and
 * the request. On HTTP, a write (any method but GET) whose answer carries a `revision` also sets
 * `X-Permission-Revision`.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import type * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type { Rpc, RpcGroup } from "@effect/rpc"
import { Effect, type Layer, Option } from "effect"
import { Api } from "../../rpc/Api.ts"
import { type PartsOf, type RpcsOf, rpcsOf } from "../../rpc/Operation.ts"
import type { Authentication, CurrentMember, CurrentUser, OrgAuthorization, PlatformAdmin } from "../../rpc/Security.ts"
import type { RequestMeta } from "../../services/AuditLog.ts"
import { requestMeta } from "./RequestMeta.ts"

/** What a handler knows of the request besides its input. */
export interface Request {
  readonly meta: RequestMeta
  /** The HTTP request on the REST door (cookies, response headers); none on the RPC door. */
  readonly http: Option.Option<HttpServerRequest.HttpServerRequest>
}

/** What a guard puts in context for the handlers behind it. */
type ProvidedBy<Guards> =
  | (Authentication extends Guards ? CurrentUser : never)
  | (PlatformAdmin extends Guards ? CurrentUser : never)
  | (OrgAuthorization extends Guards ? CurrentMember : never)

/**
 * A handler may use what its endpoint's guard provides (`CurrentUser`, `CurrentMember`) and nothing
 * else from context: services are taken once, when the implementation is made.
 */
type Handler<P extends PartsOf<any>, GroupError, GroupGuards> = (
  input: P["input"],
  request: Request
) => Effect.Effect<P["success"], P["error"] | GroupError, ProvidedBy<P["guards"] | GroupGuards>>

/** One handler per endpoint of group `G`, by endpoint name. */
export type Implementation<G> =
  G extends HttpApiGroup.HttpApiGroup<infer _Id, infer Endpoints, infer GroupError, infer GroupGuards, infer _TopLevel>
    ? { readonly [E in Endpoints as E["name"]]: Handler<PartsOf<E>, GroupError, GroupGuards> }
    : never

const withRevisionHeader = (body: unknown) =>
  typeof body === "object" && body !== null && typeof (body as { revision?: unknown }).revision === "string"
    ? HttpApp.appendPreResponseHandler((_request, response) =>
        Effect.succeed(
          HttpServerResponse.setHeader(response, "x-permission-revision", (body as { revision: string }).revision)
        )
      ).pipe(Effect.as(body))
    : Effect.succeed(body)

type AnyHandler = (input: object, request: Request) => Effect.Effect<unknown, unknown, unknown>

/** Both doors of group `G` (its HttpApi handlers and the handlers of `rpcsOf(G)`) from one implementation. */
export const implement = <G extends HttpApiGroup.HttpApiGroup.Any, E, RMake>(
  group: G,
  make: Effect.Effect<Implementation<G>, E, RMake>
): {
  readonly http: Layer.Layer<HttpApiGroup.ApiGroup<"api", G["identifier"]>, E, RMake>
  readonly rpc: Layer.Layer<Rpc.ToHandler<RpcsOf<G>>, E, RMake>
} => {
  const g = group as unknown as HttpApiGroup.HttpApiGroup.AnyWithProps
  const names = Object.keys(g.endpoints)
  const group_ = HttpApiBuilder.group as (api: unknown, name: string, build: (handlers: any) => unknown) => unknown
  const http = group_(Api, g.identifier, (handlers: any) =>
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
  const rpc = (rpcsOf(group) as RpcGroup.RpcGroup<any>).toLayer(
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
