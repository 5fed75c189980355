/**
 * Each operation is declared once, as an HttpApi endpoint in its group; its Rpc is made from that
 * declaration, so the two doors cannot drift. The Rpc of endpoint `name` in group `group` is
 * `group.name` (the OpenAPI operationId); its payload is the endpoint's path parameters, query and
 * body in one struct (none when the endpoint takes no input); success, errors and annotations (the required permission) are the endpoint's;
 * its middleware is the RPC twin of the endpoint's (see `twins`).
 */
import type { HttpApiEndpoint, HttpApiGroup } from "@effect/platform"
import { Rpc, RpcGroup } from "@effect/rpc"
import { Option, Schema } from "effect"
import { type GuardTwin, guardTwins } from "./Security.ts"

/** Turns `never` (a part the endpoint does not declare) into an empty object. */
type Part<T> = [T] extends [never] ? {} : T

/** What a caller sends: path parameters, query and body, merged. */
export type InputOf<E> =
  E extends HttpApiEndpoint.HttpApiEndpoint<
    infer _Name,
    infer _Method,
    infer Path,
    infer UrlParams,
    infer Payload,
    infer _Headers,
    infer _Success,
    infer _Error,
    infer _R,
    infer _RE
  >
    ? Part<Path> & Part<UrlParams> & Part<Payload>
    : never

type RpcOfEndpoint<Group extends string, E, GroupR> =
  E extends HttpApiEndpoint.HttpApiEndpoint<
    infer Name,
    infer _Method,
    infer _Path,
    infer _UrlParams,
    infer _Payload,
    infer _Headers,
    infer Success,
    infer Error,
    infer R,
    infer _RE
  >
    ? Rpc.Rpc<
        `${Group}.${Name}`,
        [keyof InputOf<E>] extends [never] ? typeof Schema.Void : Schema.Schema<InputOf<E>, any>,
        Schema.Schema<Success, any>,
        Schema.Schema<Error, any>,
        GuardTwin<GroupR | R>
      >
    : never

export type RpcsOf<G> =
  G extends HttpApiGroup.HttpApiGroup<infer Id, infer Endpoints, infer _Error, infer R, infer _TopLevel>
    ? RpcOfEndpoint<Id, Endpoints, R>
    : never

const fieldsOf = (schema: Option.Option<Schema.Schema.Any>): Schema.Struct.Fields => {
  if (Option.isNone(schema)) return {}
  const fields = (schema.value as { readonly fields?: Schema.Struct.Fields }).fields
  if (fields === undefined) throw new Error("Operation: path, query and body must each be a Schema.Struct")
  return fields
}

/**
 * The Rpcs of an HttpApi group: each guard the group or an endpoint uses is replaced by its RPC
 * twin (`guardTwins`); a middleware without a twin is a mistake and throws at start.
 */
export const rpcsOf = <G extends HttpApiGroup.HttpApiGroup.Any>(group: G): RpcGroup.RpcGroup<RpcsOf<G>> => {
  const g = group as unknown as HttpApiGroup.HttpApiGroup.AnyWithProps
  const rpcs = Object.values(g.endpoints).map((endpoint) => {
    const fields = {
      ...fieldsOf(endpoint.pathSchema),
      ...fieldsOf(endpoint.urlParamsSchema),
      ...fieldsOf(endpoint.payloadSchema)
    }
    // An operation without input takes none on the RPC door either: `client.auth.logout()`.
    const payload = Object.keys(fields).length === 0 ? Schema.Void : Schema.Struct(fields)
    let rpc = Rpc.make(`${g.identifier}.${endpoint.name}`, {
      payload,
      success: endpoint.successSchema as Schema.Schema.Any,
      error: endpoint.errorSchema as Schema.Schema.All
    }).annotateContext(endpoint.annotations) as Rpc.Any
    for (const middleware of new Set([...g.middlewares, ...endpoint.middlewares])) {
      const twin = guardTwins.get(middleware)
      if (twin === undefined) throw new Error(`Operation: no RPC twin for middleware ${String(middleware.key)}`)
      rpc = (rpc as Rpc.Rpc<string>).middleware(twin as never)
    }
    return rpc
  })
  return RpcGroup.make(...rpcs) as never
}
