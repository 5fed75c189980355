import { connect } from "node:net"
import {
  HttpApi,
  HttpApiBuilder,
  HttpApiEndpoint,
  HttpApiGroup,
  HttpApiSchema,
  HttpLayerRouter,
  HttpServer,
  HttpServerRequest,
  HttpServerResponse
} from "@effect/platform"
import { Deferred, Effect, FiberId, Layer, ManagedRuntime, Option, Schema, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as UwsHttpServer from "../../src/layers/http/UwsHttpServer.ts"

class Missing extends Schema.TaggedError<Missing>()(
  "Missing",
  { code: Schema.Literal("not_found"), message: Schema.String },
  HttpApiSchema.annotations({ status: 404 })
) {}

const Item = Schema.Struct({ id: Schema.String, q: Schema.String, ip: Schema.String })
const NewItem = Schema.Struct({ name: Schema.String, count: Schema.Int })

const Api = HttpApi.make("uws").add(
  HttpApiGroup.make("items")
    .add(
      HttpApiEndpoint.get("read", "/items/:id")
        .setPath(Schema.Struct({ id: Schema.String }))
        .setUrlParams(Schema.Struct({ q: Schema.String }))
        .addSuccess(Item)
        .addError(Missing)
    )
    .add(HttpApiEndpoint.post("create", "/items").setPayload(NewItem).addSuccess(NewItem, { status: 201 }))
    .add(HttpApiEndpoint.get("login", "/login"))
    .add(HttpApiEndpoint.get("numbers", "/numbers"))
    .add(HttpApiEndpoint.post("upload", "/upload").addSuccess(Schema.String))
)

// Completed when the upload handler's fiber is interrupted (the client went away mid-body).
const uploadInterrupted = Deferred.unsafeMake<void>(FiberId.none)

const Items = HttpApiBuilder.group(Api, "items", (handlers) =>
  handlers
    .handle("read", ({ path, urlParams }) =>
      path.id === "gone"
        ? Effect.fail(new Missing({ code: "not_found", message: `no item ${path.id}` }))
        : Effect.map(HttpServerRequest.HttpServerRequest, (request) => ({
            id: path.id,
            q: urlParams.q,
            ip: Option.getOrElse(request.remoteAddress, () => "none")
          }))
    )
    .handle("create", ({ payload }) => Effect.succeed(payload))
    .handle("login", () =>
      HttpServerResponse.empty({ status: 204 }).pipe(
        HttpServerResponse.setCookies([
          ["session", "abc", { httpOnly: true, path: "/" }],
          ["theme", "dark", {}]
        ]),
        Effect.orDie
      )
    )
    .handle("numbers", () =>
      Effect.succeed(
        HttpServerResponse.stream(Stream.make("1\n", "2\n", "3\n").pipe(Stream.encodeText), {
          contentType: "text/plain"
        })
      )
    )
    .handle("upload", () =>
      Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => request.text).pipe(
        Effect.orDie,
        Effect.onInterrupt(() => Deferred.succeed(uploadInterrupted, undefined))
      )
    )
)

const ServerLive = HttpLayerRouter.serve(HttpLayerRouter.addHttpApi(Api).pipe(Layer.provide(Items)), {
  disableLogger: true,
  disableListenLog: true
}).pipe(Layer.provideMerge(UwsHttpServer.layer({ port: 0, host: "127.0.0.1" })))

describe("UwsHttpServer serves an HttpApi over uWebSockets.js", () => {
  const runtime = ManagedRuntime.make(ServerLive)
  let base = ""
  let port = 0
  beforeAll(async () => {
    const server = await runtime.runPromise(HttpServer.HttpServer)
    if (server.address._tag !== "TcpAddress") throw new Error("expected a TCP address")
    port = server.address.port
    base = `http://127.0.0.1:${port}`
  })
  afterAll(() => runtime.dispose())

  it("decodes a path parameter and the query, and knows the client's address", async () => {
    const response = await fetch(`${base}/items/a%20b?q=hello%26more`)
    expect(response.status).toBe(200)
    expect(response.headers.get("content-type")).toBe("application/json")
    expect(await response.json()).toEqual({ id: "a b", q: "hello&more", ip: "127.0.0.1" })
  })

  it("decodes a JSON payload by its Schema, and refuses one that does not match with 400", async () => {
    const body = JSON.stringify({ name: "widget", count: 3 })
    const created = await fetch(`${base}/items`, {
      method: "POST",
      body,
      headers: { "content-type": "application/json" }
    })
    expect(created.status).toBe(201)
    expect(await created.json()).toEqual({ name: "widget", count: 3 })
    const invalid = await fetch(`${base}/items`, {
      method: "POST",
      body: JSON.stringify({ name: "widget", count: "three" }),
      headers: { "content-type": "application/json" }
    })
    expect(invalid.status).toBe(400)
  })

  it("collects a body that arrives in many chunks", async () => {
    const name = "x".repeat(300_000)
    const response = await fetch(`${base}/items`, {
      method: "POST",
      body: JSON.stringify({ name, count: 1 }),
      headers: { "content-type": "application/json" }
    })
    expect(response.status).toBe(201)
    expect(((await response.json()) as { name: string }).name).toBe(name)
  })

  it("answers a typed error with its status and JSON body", async () => {
    const response = await fetch(`${base}/items/gone?q=x`)
    expect(response.status).toBe(404)
    expect(await response.json()).toEqual({ _tag: "Missing", code: "not_found", message: "no item gone" })
  })

  it("sends each cookie on its own Set-Cookie line", async () => {
    const response = await fetch(`${base}/login`)
    expect(response.status).toBe(204)
    expect(response.headers.getSetCookie()).toEqual(["session=abc; Path=/; HttpOnly", "theme=dark"])
  })

  it("streams a response body", async () => {
    const response = await fetch(`${base}/numbers`)
    expect(response.headers.get("content-type")).toBe("text/plain")
    expect(await response.text()).toBe("1\n2\n3\n")
  })

  it("interrupts the request's fiber when the client goes away mid-body, and keeps serving", async () => {
    const socket = connect(port, "127.0.0.1")
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()))
    socket.write(
      "POST /upload HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain\r\ncontent-length: 1000\r\n\r\nonly part"
    )
    await new Promise((resolve) => setTimeout(resolve, 100))
    socket.destroy()
    await Effect.runPromise(Deferred.await(uploadInterrupted).pipe(Effect.timeout("5 seconds")))
    const after = await fetch(`${base}/items/ok?q=1`)
    expect(after.status).toBe(200)
  })

  it("answers an unknown route with 404", async () => {
    const response = await fetch(`${base}/nowhere`)
    expect(response.status).toBe(404)
  })
})
