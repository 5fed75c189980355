/**
 * One Node HTTP server for the REST API (HttpApi), /openapi.json, /docs (Scalar) and POST /rpc.
 * On shutdown it stops accepting, lets requests in flight finish within SHUTDOWN_TIMEOUT, then
 * cuts what is left.
 */

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { RpcServer } from "@effect/rpc"
import { type Context, Duration, Effect, Layer, Scope } from "effect"
import { servedApi } from "../../rpc/Api.ts"
import { Rpcs } from "../../rpc/Rpcs.ts"
import { exportsSpans } from "../../services/Span.ts"
import { Settings } from "../Settings.ts"
import { AdminHandlers, AuditHandlers } from "./AdminHandlers.ts"
import { AuthenticationLive, AuthHandlers, RpcAuthenticationLive } from "./AuthHandlers.ts"
import { AuthzHandlers } from "./AuthzHandlers.ts"
import { makeFrontDoor } from "./FrontDoor.ts"
import { HealthHandlers } from "./HealthHandlers.ts"
import { type HotPaths, makeHotPaths } from "./HotPaths.ts"
import { BodyLimitLive, GlobalMiddleware } from "./HttpMiddleware.ts"
import { builtLean, withoutApplicationServices } from "./Implement.ts"
import { AssignmentsHandlers, InvitationsHandlers, MembersHandlers } from "./MemberHandlers.ts"
import { OrgAuthorizationLive, RpcOrgAuthorizationLive } from "./OrgAuthorization.ts"
import { OrgsHandlers } from "./OrgHandlers.ts"
import { PlatformAdminLive, RpcPlatformAdminLive } from "./PlatformAdmin.ts"
import { RealtimeHandlers } from "./RealtimeHandlers.ts"
import { PermissionsHandlers, RolesHandlers } from "./RoleHandlers.ts"
import { RpcProtocolLive, RpcSerializationLive } from "./RpcTransport.ts"

// Every group's implementation serves both doors: its `http` handlers and its `rpc` handlers.
const HttpHandlers = Layer.mergeAll(
  HealthHandlers.http,
  AuthHandlers.http,
  OrgsHandlers.http,
  InvitationsHandlers.http,
  MembersHandlers.http,
  AssignmentsHandlers.http,
  PermissionsHandlers.http,
  RolesHandlers.http,
  AuthzHandlers.http,
  AuditHandlers.http,
  AdminHandlers.http,
  RealtimeHandlers.http
)

const RpcHandlers = Layer.mergeAll(
  HealthHandlers.rpc,
  AuthHandlers.rpc,
  OrgsHandlers.rpc,
  InvitationsHandlers.rpc,
  MembersHandlers.rpc,
  AssignmentsHandlers.rpc,
  PermissionsHandlers.rpc,
  RolesHandlers.rpc,
  AuthzHandlers.rpc,
  AuditHandlers.rpc,
  AdminHandlers.rpc,
  RealtimeHandlers.rpc
)

/** REST and /openapi.json; the document names this server (PUBLIC_URL). */
const ApiRoutes = Layer.unwrapEffect(
  Effect.map(Settings.publicUrl, (publicUrl) =>
    builtLean(HttpLayerRouter.addHttpApi(servedApi(publicUrl), { openapiPath: "/openapi.json" })).pipe(
      Layer.provide(HttpHandlers),
      Layer.provide([AuthenticationLive, OrgAuthorizationLive, PlatformAdminLive])
    )
  )
)

/** /docs, built on its first request and kept (DocsPage.ts says why); not served unless DOCS_ENABLED. */
const DocsRoute = Layer.unwrapScoped(
  Effect.gen(function* () {
    if (!(yield* Settings.docsEnabled)) return Layer.empty
    const publicUrl = yield* Settings.publicUrl
    const scope = yield* Effect.scope
    const page = yield* Effect.cached(
      Effect.promise(() => import("./DocsPage.ts")).pipe(
        Effect.flatMap((module) => module.docsApp(publicUrl)),
        Scope.extend(scope)
      )
    )
    return HttpLayerRouter.add("GET", "/docs", Effect.flatten(page))
  })
)

/** POST /rpc: messages keep only their own `authorization` header, at most MAX_RPC_MESSAGES a request. */
const RpcRoute = RpcServer.layer(Rpcs).pipe(
  Layer.provide(RpcProtocolLive),
  Layer.provide(RpcHandlers),
  Layer.provide([RpcAuthenticationLive, RpcOrgAuthorizationLive, RpcPlatformAdminLive]),
  Layer.provide(RpcSerializationLive)
)

export const Routes = Layer.mergeAll(ApiRoutes, DocsRoute, RpcRoute).pipe(
  Layer.provide(GlobalMiddleware),
  Layer.provideMerge(BodyLimitLive)
)

/**
 * `HttpLayerRouter.serve`, with requests run in a context of the platform's services only. Each
 * handler group and middleware captured the services it uses when it was built; Effect copies the
 * request's context at every per-request `provideService` and merge (half a dozen times per request),
 * so carrying every service of the node along cost tens of µs a request (bench:http).
 */
const serveRoutes = <E, R>(routes: Layer.Layer<never, E, R>) =>
  Layer.scopedDiscard(
    Effect.gen(function* () {
      const handler = (yield* HttpLayerRouter.HttpRouter).asHttpEffect()
      yield* HttpServer.serveEffect(handler).pipe(
        Effect.mapInputContext((context: Context.Context<never>) =>
          withoutApplicationServices<never, Scope.Scope | HttpServer.HttpServer>(context)
        )
      )
    })
  ).pipe(Layer.provideMerge(routes), Layer.provide(HttpLayerRouter.layer))

/**
 * A Node HTTP server whose every request passes the front door (FrontDoor.ts), then the hot paths
 * when given (HotPaths.ts); what they leave goes to the handler the platform registers.
 */
export const makeNodeServer = (hot: HotPaths | undefined) =>
  Effect.map(makeFrontDoor, (front) => {
    const server = createServer({ requestTimeout: 30_000, headersTimeout: 20_000, keepAliveTimeout: 5_000 })
    const emit = server.emit.bind(server)
    server.emit = ((event: string, ...args: Array<unknown>) => {
      if (event !== "request") return emit(event, ...args)
      const [request, response] = args as [IncomingMessage, ServerResponse]
      let taken = false
      try {
        front(request, response)
        taken = hot?.(request, response, (replayed) => emit("request", replayed, response)) ?? false
      } catch {
        taken = false
      }
      return taken || emit(event, ...args)
    }) as typeof server.emit
    return server
  })

const closeGracefully = (server: Server, timeout: Duration.Duration) =>
  Effect.gen(function* () {
    if (!server.listening) return
    yield* Effect.logInfo("http: draining requests in flight")
    const closed = Effect.async<void>((resume) => {
      server.close(() => resume(Effect.void))
    })
    yield* closed.pipe(
      Effect.timeout(timeout),
      Effect.catchTag("TimeoutException", () =>
        Effect.logWarning(`http: requests still open after ${Duration.format(timeout)}; closing them`).pipe(
          Effect.andThen(Effect.sync(() => server.closeAllConnections()))
        )
      )
    )
  })

export const HttpServerLive = Layer.unwrapScoped(
  Effect.gen(function* () {
    const host = yield* Settings.host
    const port = yield* Settings.port
    const timeout = yield* Settings.shutdownTimeout
    const served = (yield* Settings.docsEnabled) ? "REST, /rpc, /docs, /openapi.json" : "REST, /rpc, /openapi.json"
    // The platform's per-request span (URL parse, header redaction, a span) only when spans are
    // exported; the hot paths only when they are not, so that traces see every request.
    const tracing = yield* exportsSpans
    const server = yield* makeNodeServer(tracing ? undefined : yield* makeHotPaths)
    const serve = serveRoutes(Routes).pipe(
      HttpMiddleware.withTracerDisabledWhen(() => !tracing),
      Layer.provide(NodeHttpServer.layer(() => server, { port, host }))
    )
    // Built after the server, so released before it: drain first, then the platform's close is a no-op.
    const drain = Layer.scopedDiscard(
      Effect.zipRight(
        Effect.logInfo(`http: listening on http://${host}:${port} (${served})`),
        Effect.addFinalizer(() => closeGracefully(server, timeout))
      )
    )
    return drain.pipe(Layer.provide(serve))
  })
)
