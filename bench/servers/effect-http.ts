/**
 * bench:http-uws: one HttpApi endpoint, GET /health/live answering `Liveness` (no I/O), served by
 * @effect/platform's HttpLayerRouter on NodeHttpServer (SERVER=node) or on UwsHttpServer (SERVER=uws).
 * Options as src/layers/http/HttpServer.ts sets them when spans are not exported: no logger, no tracer.
 */
import { createServer } from "node:http"
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect, Layer } from "effect"
import * as UwsHttpServer from "../../src/layers/http/UwsHttpServer.ts"
import { Liveness } from "../../src/rpc/Health.ts"

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? "127.0.0.1"

const Api = HttpApi.make("bench").add(
  HttpApiGroup.make("health").add(HttpApiEndpoint.get("live", "/health/live").addSuccess(Liveness))
)

const live = Effect.succeed(new Liveness({ status: "ok" }))
const Health = HttpApiBuilder.group(Api, "health", (handlers) => handlers.handle("live", () => live))

const Server =
  process.env.SERVER === "uws"
    ? UwsHttpServer.layer({ port, host })
    : NodeHttpServer.layer(() => createServer({ keepAliveTimeout: 5_000 }), { port, host })

const Main = HttpLayerRouter.serve(HttpLayerRouter.addHttpApi(Api).pipe(Layer.provide(Health)), {
  disableLogger: true,
  disableListenLog: true
}).pipe(
  HttpMiddleware.withTracerDisabledWhen(() => true),
  Layer.provide(Server)
)

NodeRuntime.runMain(Layer.launch(Main))
