/**
 * The bare HttpApi floor of bench:http, bench:auth and bench:check: the endpoints below as an
 * HttpApi app served by @effect/platform's HttpLayerRouter on NodeHttpServer (SERVER=node, the
 * default) or on UwsHttpServer (SERVER=uws), with the options src/layers/http/HttpServer.ts sets
 * when spans are not exported: no logger, no tracer. No middleware, no I/O, no verification.
 *
 *  - GET /health/live: `Liveness` (bench:http);
 *  - GET /v1/me: reads the `authorization` header through the endpoint's header schema and answers a
 *    constant `Me`, the schema of our /v1/me (bench:auth);
 *  - POST /v1/orgs/{organizationId}/check: decodes the path and a `CheckRequest` body with our own
 *    schemas and answers a constant `CheckResult` (bench:check).
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
import { DateTime, Effect, Layer, Schema } from "effect"
import * as UwsHttpServer from "../../src/layers/http/UwsHttpServer.ts"
import { Me } from "../../src/rpc/Auth.ts"
import { CheckRequest, CheckResult } from "../../src/rpc/Authz.ts"
import { Liveness } from "../../src/rpc/Health.ts"
import { OrganizationId } from "../../src/rpc/Orgs.ts"

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? "127.0.0.1"

const Api = HttpApi.make("bench")
  .add(HttpApiGroup.make("health").add(HttpApiEndpoint.get("live", "/health/live").addSuccess(Liveness)))
  .add(
    HttpApiGroup.make("floor")
      .add(
        HttpApiEndpoint.get("me", "/v1/me")
          .setHeaders(Schema.Struct({ authorization: Schema.String }))
          .addSuccess(Me)
      )
      .add(
        HttpApiEndpoint.post("check", "/v1/orgs/:organizationId/check")
          .setPath(Schema.Struct({ organizationId: OrganizationId }))
          .setPayload(CheckRequest)
          .addSuccess(CheckResult)
      )
  )

const live = Effect.succeed(new Liveness({ status: "ok" }))
const me = Effect.succeed(
  new Me({
    id: "0193a5c2-7d1e-7c3b-9f4a-2b6d8e0f1a2c",
    email: "owner@bench.example",
    name: "Bench",
    emailVerified: true,
    mfaEnabled: false,
    createdAt: DateTime.unsafeMake("2026-12-01T00:00:00.000Z")
  })
)
const checked = Effect.succeed(
  new CheckResult({ allowed: true, reason: "allowed: allow project.view:* from role project-admin", revision: "1874" })
)
const Health = HttpApiBuilder.group(Api, "health", (handlers) => handlers.handle("live", () => live))
const Floor = HttpApiBuilder.group(Api, "floor", (handlers) =>
  handlers.handle("me", () => me).handle("check", () => checked)
)

const Server =
  process.env.SERVER === "uws"
    ? UwsHttpServer.layer({ port, host })
    : NodeHttpServer.layer(() => createServer({ keepAliveTimeout: 5_000 }), { port, host })

const Main = HttpLayerRouter.serve(HttpLayerRouter.addHttpApi(Api).pipe(Layer.provide([Health, Floor])), {
  disableLogger: true,
  disableListenLog: true
}).pipe(
  HttpMiddleware.withTracerDisabledWhen(() => true),
  Layer.provide(Server)
)

NodeRuntime.runMain(Layer.launch(Main))
