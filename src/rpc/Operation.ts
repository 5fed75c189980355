/**
 * Each operation is declared once, as an HttpApi endpoint in its group; its Rpc is made from that
 * declaration, so the two doors cannot drift. The Rpc of endpoint `name` in group `group` is
 * `group.name` (the OpenAPI operationId); its payload is the endpoint's path parameters, query and
 * body in one struct (none when the endpoint takes no input); success, errors and annotations (the required permission) are the endpoint's;
 * its middleware is the RPC twin of the endpoint's (see `twins`).
 */
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import type * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import type * as HttpApiMiddleware from "@effect/platform/HttpApiMiddleware"
import type { HttpMethod } from "@effect/platform/HttpMethod"
import { Rpc, RpcGroup } from "@effect/rpc"
import { type Context, Option, Schema } from "effect"
import type { CatalogKey } from "../domain/Catalog.ts"
import { BadRequest } from "./Errors.ts"
import {
  type Authentication,
  type GuardTwin,
  guardTwins,
  type OrgAuthorization,
  type PlatformAdmin,
  platformAdminOnly,
  requires,
  requiresUnlessSelf
} from "./Security.ts"

/** Turns `never` (a part the endpoint does not declare) into an empty object. */
type Part<T> = [T] extends [never] ? {} : T

/** The parts of an endpoint's type, by name. */
export type PartsOf<E> =
  E extends HttpApiEndpoint.HttpApiEndpoint<
    infer Name,
    infer _Method,
    infer Path,
    infer UrlParams,
    infer Payload,
    infer _Headers,
    infer Success,
    infer Error,
    infer R,
    infer _RE
  >
    ? {
        readonly name: Name
        /** What a caller sends: path parameters, query and body, merged. */
        readonly input: Part<Path> & Part<UrlParams> & Part<Payload>
        readonly success: Success
        readonly error: Error
        /** The endpoint's middleware (its guard). */
        readonly guards: R
      }
    : never

export type InputOf<E> = PartsOf<E>["input"]

type RpcOf<Group extends string, P extends PartsOf<any>, GroupR> = Rpc.Rpc<
  `${Group}.${P["name"]}`,
  [keyof P["input"]] extends [never] ? typeof Schema.Void : Schema.Schema<P["input"], any>,
  Schema.Schema<P["success"], any>,
  Schema.Schema<P["error"] | BadRequest, any>,
  GuardTwin<GroupR | P["guards"]>
>

type RpcOfEndpoint<Group extends string, E, GroupR> = E extends unknown ? RpcOf<Group, PartsOf<E>, GroupR> : never

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
      // A payload that does not decode is answered as on the REST door: 400 `invalid_payload`
      // (layers/http/RpcTransport.ts), so every Rpc may fail with BadRequest.
      error: Schema.Union(endpoint.errorSchema as Schema.Schema.All, BadRequest)
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

/** The guards an operation may stand behind (HttpApi side; their RPC twins follow). */
type Guard = typeof Authentication | typeof OrgAuthorization | typeof PlatformAdmin

type AnyStruct = Schema.Schema.Any & { readonly fields: Schema.Struct.Fields }

/** What a family of operations shares: a path prefix, the schema of each path parameter, a guard, errors. */
export interface Defaults {
  readonly prefix?: string
  readonly params?: Readonly<Record<string, Schema.Schema.Any>>
  readonly guard?: Guard
  /** Errors every operation of the family may answer (for example 503 where no guard declares it). */
  readonly errors?: ReadonlyArray<Schema.Schema.All>
  /** Every operation of the family is for platform administrators only. */
  readonly platformAdmin?: true
}

/** One operation: its input, answer and errors, and who may call it. Its prose is in OperationDocs.json. */
export interface Spec {
  readonly query?: AnyStruct
  readonly payload?: AnyStruct
  readonly status?: number
  readonly errors?: ReadonlyArray<Schema.Schema.All>
  readonly guard?: Guard
  /** The built-in permission it requires in the organization (`x-required-permission`). */
  readonly requires?: CatalogKey
  /** Any member may ask about themselves; `requires` is needed about others. */
  readonly selfService?: true
  readonly platformAdmin?: true
}

type Pick_<O, K extends string, D> = O extends { readonly [k in K]: infer V } ? V : D
type TypeOf<S> = S extends Schema.Schema.Any ? Schema.Schema.Type<S> : never
type GuardOf<D extends Defaults, O extends Spec> = Pick_<O, "guard", Pick_<D, "guard", never>>

/** The `:name` parameters of a path. */
type ParamsIn<P extends string> = P extends `${string}:${infer Name}/${infer Rest}`
  ? Name | ParamsIn<`/${Rest}`>
  : P extends `${string}:${infer Name}`
    ? Name
    : never

/** The decoded path parameters of `Path`, each typed by the family's `params`. */
type PathOf<D extends Defaults, Path extends string> = [ParamsIn<Path>] extends [never]
  ? never
  : {
      readonly [K in ParamsIn<Path>]: K extends keyof Pick_<D, "params", {}> ? TypeOf<Pick_<D, "params", {}>[K]> : never
    }
type GuardId<G> = G extends Context.Tag<infer I, infer _S> ? I : never

export type EndpointOf<
  Name extends string,
  Method extends HttpMethod,
  Path extends string,
  Success extends Schema.Schema.Any,
  D extends Defaults,
  O extends Spec
> = HttpApiEndpoint.HttpApiEndpoint<
  Name,
  Method,
  PathOf<D, `${Pick_<D, "prefix", "">}${Path}`>,
  TypeOf<Pick_<O, "query", never>>,
  TypeOf<Pick_<O, "payload", never>>,
  never,
  Schema.Schema.Type<Success>,
  | Schema.Schema.Type<Pick_<O, "errors", ReadonlyArray<typeof Schema.Never>>[number]>
  | Schema.Schema.Type<Pick_<D, "errors", ReadonlyArray<typeof Schema.Never>>[number]>
  | HttpApiMiddleware.HttpApiMiddleware.Error<GuardId<GuardOf<D, O>>>,
  GuardId<GuardOf<D, O>>,
  HttpApiMiddleware.HttpApiMiddleware.ErrorContext<GuardId<GuardOf<D, O>>>
>

const declare = (
  method: HttpMethod,
  name: string,
  path: string,
  success: Schema.Schema.Any,
  defaults: Defaults,
  spec: Spec
): HttpApiEndpoint.HttpApiEndpoint.Any => {
  const fullPath = `${defaults.prefix ?? ""}${path}`
  let endpoint: any = HttpApiEndpoint.make(method)(name, fullPath as `/${string}`)
  const params = [...fullPath.matchAll(/:(\w+)/g)].map(([, param]) => param!)
  if (params.length > 0) {
    endpoint = endpoint.setPath(
      Schema.Struct(
        Object.fromEntries(
          params.map((param) => {
            const schema = defaults.params?.[param]
            if (schema === undefined) throw new Error(`Operation ${name}: no schema for path parameter :${param}`)
            return [param, schema]
          })
        )
      )
    )
  }
  if (spec.query !== undefined) endpoint = endpoint.setUrlParams(spec.query)
  if (spec.payload !== undefined) endpoint = endpoint.setPayload(spec.payload)
  endpoint = endpoint.addSuccess(success, spec.status === undefined ? undefined : { status: spec.status })
  for (const error of new Set([...(defaults.errors ?? []), ...(spec.errors ?? [])])) endpoint = endpoint.addError(error)
  const guard = spec.guard ?? defaults.guard
  if (guard !== undefined) endpoint = endpoint.middleware(guard)
  if (spec.requires !== undefined) {
    endpoint = endpoint.annotateContext(
      spec.selfService === true ? requiresUnlessSelf(spec.requires) : requires(spec.requires)
    )
  }
  if ((spec.platformAdmin ?? defaults.platformAdmin) === true) endpoint = endpoint.annotateContext(platformAdminOnly)
  return endpoint
}

/**
 * Declares operations sharing `defaults`, one call each:
 * `roles.post("create", "/roles", RoleChanged, { payload: CreateRole, status: 201, requires: "roles:create" })`.
 * Without a success schema the answer is 204 No Content.
 */
export const operations = <const D extends Defaults>(defaults: D) => {
  const verb =
    <Method extends HttpMethod>(method: Method) =>
    <
      const Name extends string,
      const Path extends `/${string}` | "",
      Success extends Schema.Schema.Any,
      const O extends Spec
    >(
      name: Name,
      path: Path,
      success: Success,
      spec: O = {} as O
    ): EndpointOf<Name, Method, Path, Success, D, O> =>
      declare(method, name, path, success, defaults, spec) as never
  return {
    get: verb("GET"),
    post: verb("POST"),
    put: verb("PUT"),
    patch: verb("PATCH"),
    del: verb("DELETE")
  }
}
