/**
 * One implementation per operation, served on both doors: `implement(Group, make)` gives the
 * HttpApi handlers of the group and the handlers of its Rpcs (`rpcsOf(Group)`), each calling the
 * same function with the caller's input (path, query and body merged, as the Rpc's payload) and
 * the request. On HTTP, a write (any method but GET) whose answer carries a `revision` also sets
 * `X-Permission-Revision`. On both doors, an operation that fails because the database went away
 * (refused or cut connection, shutdown, timeout) answers `ServiceUnavailable`, whichever call site
 * met it: repositories turn `SqlError` into defects, and this is the one place that reads them.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import type * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApp from "@effect/platform/HttpApp"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type { Rpc, RpcGroup } from "@effect/rpc"
import { SqlError } from "@effect/sql/SqlError"
import { Cause, Context, Effect, Layer, Option } from "effect"
import { Api } from "../../rpc/Api.ts"
import { ServiceUnavailable } from "../../rpc/Errors.ts"
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

/** The HttpApi middleware of our guards, which the routes look up in the context they are built in. */
const GUARDS = new Set(["app/Authentication", "app/OrgAuthorization", "app/PlatformAdmin"])

/**
 * A context without this application's services and its database (but the guards): what routes and
 * requests run in. Effect copies a request's context at every merge and `provideService`, so
 * carrying every service of the node along cost tens of µs a request (bench:http).
 */
export const withoutApplicationServices = <In, Out = In>(context: Context.Context<In>): Context.Context<Out> =>
  Context.unsafeMake(
    new Map(
      [...context.unsafeMap].filter(
        ([key]) => GUARDS.has(key) || !(key.startsWith("app/") || key.startsWith("@effect/sql"))
      )
    )
  )

/**
 * SQLSTATE classes that mean the statement or its data was wrong (22 data exception, 23 integrity
 * constraint, 42 syntax or access rule): a fault of ours to fix, not the database being away.
 */
const STATEMENT_FAULT = /^(22|23|42)/

/** The SQLSTATE a driver error carries, if it is one (connection errors carry none, or an errno). */
const sqlState = (cause: unknown) => {
  const code = typeof cause === "object" && cause !== null ? (cause as { code?: unknown }).code : undefined
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined
}

/** A `SqlError` (itself, or as the cause of what was thrown) that says the database could not answer. */
const isDatabaseLoss = (thrown: unknown): boolean => {
  let current = thrown
  for (let depth = 0; depth < 4 && typeof current === "object" && current !== null; depth++) {
    if (current instanceof SqlError) {
      const state = sqlState(current.cause)
      return state === undefined || !STATEMENT_FAULT.test(state)
    }
    current = (current as { cause?: unknown }).cause
  }
  return false
}

const databaseUnavailable = new ServiceUnavailable({ message: "The database is unavailable right now; try again" })

/** Any failure or defect of `answer` that is the database going away becomes `ServiceUnavailable`. */
const unavailableOnDatabaseLoss = <A, E, R>(answer: Effect.Effect<A, E, R>) =>
  Effect.catchAllCause(answer, (cause): Effect.Effect<never, E | ServiceUnavailable> => {
    const lost = Cause.find(cause, (reason) =>
      (reason._tag === "Die" && isDatabaseLoss(reason.defect)) ||
      (reason._tag === "Fail" && isDatabaseLoss(reason.error))
        ? Option.some(reason)
        : Option.none()
    )
    return Option.isSome(lost)
      ? Effect.logWarning("database unavailable; answering 503", cause).pipe(Effect.zipRight(databaseUnavailable))
      : Effect.failCause(cause)
  })

/**
 * `layer`, built in a context without this application's services (but the guards): HttpApi groups
 * and `addHttpApi` keep the context they are built in and merge it into every request's. Built with
 * the application's memo map, so the router the routes go into is the shared one.
 */
export const builtLean = <A, E, R>(layer: Layer.Layer<A, E, R>): Layer.Layer<A, E, R> =>
  Layer.scopedContext(
    Effect.flatMap(Effect.all([Layer.CurrentMemoMap, Effect.scope]), ([memoMap, scope]) =>
      Layer.buildWithMemoMap(layer, memoMap, scope)
    ).pipe(Effect.mapInputContext((context: Context.Context<R>) => withoutApplicationServices(context)))
  )

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
  const group_ = HttpApiBuilder.group as (
    api: unknown,
    name: string,
    build: (handlers: any) => unknown
  ) => Layer.Layer<unknown, unknown, unknown>
  const http = Layer.unwrapScoped(
    Effect.map(make, (implementation) => {
      const byName = implementation as unknown as Record<string, AnyHandler>
      const routes = group_(Api, g.identifier, (handlers: any) =>
        names.reduce(
          (acc, name) =>
            acc.handle(name, ({ path, urlParams, payload }: Record<string, object | undefined>) =>
              Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
                const answer = unavailableOnDatabaseLoss(
                  byName[name]!(
                    { ...path, ...urlParams, ...payload },
                    { meta: requestMeta(request.headers), http: Option.some(request) }
                  )
                )
                return request.method === "GET" ? answer : Effect.flatMap(answer, withRevisionHeader)
              })
            ),
          handlers
        )
      )
      // The group keeps the context it is built in and merges it into every request's: built in one
      // without this application's services (its handlers hold what they use), that copy is small.
      return builtLean(routes)
    })
  )
  const rpc = (rpcsOf(group) as RpcGroup.RpcGroup<any>).toLayer(
    Effect.map(make, (implementation) => {
      const byName = implementation as unknown as Record<string, AnyHandler>
      return Object.fromEntries(
        names.map((name) => [
          `${g.identifier}.${name}`,
          (payload: object | undefined, { headers }: { headers: Readonly<Record<string, string | undefined>> }) =>
            unavailableOnDatabaseLoss(byName[name]!(payload ?? {}, { meta: requestMeta(headers), http: Option.none() }))
        ])
      )
    })
  )
  return { http, rpc } as never
}
