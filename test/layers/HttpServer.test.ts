import { createServer, request as httpRequest } from "node:http"
import { HttpApi, HttpApiBuilder, HttpApiEndpoint, HttpApiGroup, HttpLayerRouter, HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { SqlClient } from "@effect/sql"
import { ConfigProvider, Effect, HashMap, Layer, Logger, ManagedRuntime, Schema } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeNodeServer, Routes } from "../../src/layers/http/HttpServer.ts"
import { withRequestId } from "../../src/layers/Logging.ts"
import { AccessTokens } from "../../src/services/AccessTokens.ts"
import { Accounts } from "../../src/services/Accounts.ts"
import { Admin } from "../../src/services/Admin.ts"
import { AuditLog } from "../../src/services/AuditLog.ts"
import { Invitations } from "../../src/services/Invitations.ts"
import { Members } from "../../src/services/Members.ts"
import { Mfa } from "../../src/services/Mfa.ts"
import { Organizations } from "../../src/services/Organizations.ts"
import { PermissionStore } from "../../src/services/PermissionStore.ts"
import { Readiness } from "../../src/services/Readiness.ts"
import { Realtime } from "../../src/services/Realtime.ts"
import { Roles } from "../../src/services/Roles.ts"
import { SignIn } from "../../src/services/SignIn.ts"

// A payload endpoint and a crashing one, served next to the real routes and middleware.
const TestApi = HttpApi.make("test").add(
  HttpApiGroup.make("test")
    .add(
      HttpApiEndpoint.post("echo", "/test/echo")
        .setPayload(Schema.Struct({ name: Schema.String, age: Schema.Number }))
        .addSuccess(Schema.Struct({ name: Schema.String }))
    )
    .add(HttpApiEndpoint.get("boom", "/test/boom"))
    .add(HttpApiEndpoint.get("talk", "/test/talk"))
)

const TestRoutes = HttpLayerRouter.addHttpApi(TestApi).pipe(
  Layer.provide(
    HttpApiBuilder.group(TestApi, "test", (handlers) =>
      handlers
        .handle("echo", ({ payload }) => Effect.succeed({ name: payload.name }))
        .handle("boom", () => Effect.die(new Error("database password is hunter2")))
        .handle("talk", () => Effect.logWarning("said inside a handler"))
    )
  )
)

const logs: Array<{ message: unknown; annotations: Record<string, unknown> }> = []
const CaptureLogs = Logger.replace(
  Logger.defaultLogger,
  withRequestId(
    Logger.make(({ message, annotations }) => {
      logs.push({
        message: Array.isArray(message) ? message[0] : message,
        annotations: Object.fromEntries(HashMap.toEntries(annotations))
      })
    })
  )
)

/** The auth routes are not called here: any use of these services is a test failure. */
const unused = new Proxy({}, { get: () => () => Effect.die("not used in this test") })

const config = ConfigProvider.fromMap(
  new Map([
    ["PUBLIC_URL", "https://api.example.com"],
    ["ALLOWED_ORIGINS", "https://app.example.com,https://admin.example.com"],
    ["MAX_BODY_SIZE", "1024"]
  ])
)

const ServerLive = HttpLayerRouter.serve(Layer.mergeAll(Routes, TestRoutes), { disableLogger: true }).pipe(
  Layer.provide(Layer.succeed(Accounts, unused as never)),
  Layer.provide(Layer.succeed(SignIn, unused as never)),
  Layer.provide(Layer.succeed(Mfa, unused as never)),
  Layer.provide(Layer.succeed(AccessTokens, unused as never)),
  Layer.provide(Layer.succeed(PermissionStore, unused as never)),
  Layer.provide(Layer.succeed(Organizations, unused as never)),
  Layer.provide(Layer.succeed(Roles, unused as never)),
  Layer.provide(Layer.succeed(Members, unused as never)),
  Layer.provide(Layer.succeed(Invitations, unused as never)),
  Layer.provide(Layer.succeed(Admin, unused as never)),
  Layer.provide(Layer.succeed(Realtime, unused as never)),
  Layer.provide(Layer.succeed(AuditLog, unused as never)),
  Layer.provide(Layer.succeed(SqlClient.SqlClient, unused as never)),
  Layer.provide(
    Layer.succeed(Readiness, {
      check: Effect.succeed({ ready: true, checks: { database: "up" as const, events: "up" as const } })
    })
  ),
  // The server as HttpServerLive makes it: every request through the front door (hot paths off).
  Layer.provideMerge(
    Layer.unwrapEffect(
      Effect.map(makeNodeServer(undefined), (server) =>
        NodeHttpServer.layer(() => server, { port: 0, host: "127.0.0.1" })
      )
    )
  ),
  Layer.provide(CaptureLogs),
  Layer.provide(Layer.setConfigProvider(config))
)

describe("HTTP behaviour every route shares", () => {
  const runtime = ManagedRuntime.make(ServerLive)
  let base = ""
  beforeAll(async () => {
    const server = await runtime.runPromise(HttpServer.HttpServer)
    if (server.address._tag !== "TcpAddress") throw new Error("expected a TCP address")
    base = `http://127.0.0.1:${server.address.port}`
  })
  afterAll(() => runtime.dispose())

  const post = (path: string, body: string, headers: Record<string, string> = {}) =>
    fetch(`${base}${path}`, { method: "POST", body, headers: { "content-type": "application/json", ...headers } })

  it("gives each response a request id, and keeps a valid one the client sent", async () => {
    const generated = await fetch(`${base}/health/live`)
    expect(generated.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/)
    const kept = await fetch(`${base}/health/live`, { headers: { "x-request-id": "abc-123" } })
    expect(kept.headers.get("x-request-id")).toBe("abc-123")
    const replaced = await fetch(`${base}/health/live`, { headers: { "x-request-id": "bad id\twith spaces" } })
    expect(replaced.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/)
  })

  it("writes one structured log line per request, and the request id is on every line of that request", async () => {
    const response = await fetch(`${base}/test/boom`, { headers: { "x-request-id": "trace-boom-1" } })
    expect(response.status).toBe(500)
    const lines = logs.filter((line) => line.annotations.requestId === "trace-boom-1")
    expect(lines.map((line) => line.message)).toEqual(["unhandled error", "http request"])
    expect(lines[1]?.annotations).toMatchObject({ method: "GET", path: "/test/boom", status: 500, ip: "127.0.0.1" })
  })

  it("puts the request id on a line a handler logs, without the handler naming it", async () => {
    const response = await fetch(`${base}/test/talk`, { headers: { "x-request-id": "trace-talk-1" } })
    expect(response.status).toBe(204)
    const said = logs.find((line) => line.message === "said inside a handler")
    expect(said?.annotations.requestId).toBe("trace-talk-1")
  })

  it("sets security headers, and HSTS because PUBLIC_URL is https", async () => {
    const response = await fetch(`${base}/health/live`)
    expect(response.headers.get("x-content-type-options")).toBe("nosniff")
    expect(response.headers.get("x-frame-options")).toBe("DENY")
    expect(response.headers.get("referrer-policy")).toBe("no-referrer")
    expect(response.headers.get("strict-transport-security")).toContain("max-age=")
    expect(response.headers.get("cache-control")).toBe("no-store")
  })

  it("allows CORS only for origins on ALLOWED_ORIGINS, exactly", async () => {
    const allowed = await fetch(`${base}/health/live`, { headers: { origin: "https://admin.example.com" } })
    expect(allowed.headers.get("access-control-allow-origin")).toBe("https://admin.example.com")
    for (const origin of ["https://evil.example.com", "https://app.example.com.evil.com", "http://app.example.com"]) {
      const denied = await fetch(`${base}/health/live`, { headers: { origin } })
      expect(denied.headers.get("access-control-allow-origin")).toBeNull()
    }
    const preflight = await fetch(`${base}/rpc`, {
      method: "OPTIONS",
      headers: { origin: "https://app.example.com", "access-control-request-method": "POST" }
    })
    expect(preflight.status).toBeLessThan(300)
    expect(preflight.headers.get("access-control-allow-origin")).toBe("https://app.example.com")
  })

  it("answers an unknown path with a JSON 404 and a known path with the wrong method with a JSON 405", async () => {
    const missing = await fetch(`${base}/nowhere`)
    expect(missing.status).toBe(404)
    expect(await missing.json()).toEqual({ _tag: "NotFound", code: "not_found", message: "No route for GET /nowhere" })
    const wrong = await fetch(`${base}/health/ready`, { method: "DELETE" })
    expect(wrong.status).toBe(405)
    expect(wrong.headers.get("allow")).toBe("GET")
    expect(await wrong.json()).toMatchObject({ code: "method_not_allowed" })
  })

  it("refuses a body over the limit with 413 before reading it, and a body without a length with 411", async () => {
    const large = await post("/test/echo", JSON.stringify({ name: "x".repeat(2000), age: 1 }))
    expect(large.status).toBe(413)
    expect(await large.json()).toMatchObject({ code: "payload_too_large" })
    const chunked = await new Promise<number | undefined>((resolve, reject) => {
      const request = httpRequest(`${base}/test/echo`, {
        method: "POST",
        headers: { "content-type": "application/json" }
      })
      request.once("response", (response) => {
        response.resume()
        resolve(response.statusCode)
      })
      request.once("error", reject)
      request.write('{"name":"a",')
      request.end('"age":1}')
    })
    expect(chunked).toBe(411)
  })

  it("answers malformed JSON with 400 invalid_json", async () => {
    const response = await post("/test/echo", '{"name":')
    expect(response.status).toBe(400)
    expect(await response.json()).toEqual({
      _tag: "BadRequest",
      code: "invalid_json",
      message: "The request body is not valid JSON"
    })
  })

  it("answers a payload that fails its schema with 400 invalid_payload naming the field", async () => {
    const response = await post("/test/echo", JSON.stringify({ name: "a", age: "old" }))
    expect(response.status).toBe(400)
    const body = (await response.json()) as { code: string; message: string }
    expect(body.code).toBe("invalid_payload")
    expect(body.message).toContain("age")
    const missing = await post("/test/echo", JSON.stringify({ age: 3 }))
    expect(((await missing.json()) as { message: string }).message).toMatch(/^name: /)
  })

  it("never echoes the value that failed the schema", async () => {
    const echoed = await post("/test/echo", JSON.stringify({ name: "a", age: "my secret value" }))
    const text = await echoed.text()
    expect(echoed.status).toBe(400)
    expect(text).not.toContain("my secret value")
  })

  it("turns a defect into a generic 500 without a stack trace or the defect's message", async () => {
    const response = await fetch(`${base}/test/boom`)
    expect(response.status).toBe(500)
    const text = await response.text()
    expect(JSON.parse(text)).toMatchObject({ _tag: "InternalError", code: "internal_error" })
    expect(text).not.toContain("hunter2")
    expect(text).not.toMatch(/\bat .*:\d+:\d+/)
  })

  it("ignores unknown payload fields and treats __proto__ keys as plain data", async () => {
    const response = await post("/test/echo", '{"name":"a","age":1,"isAdmin":true,"__proto__":{"polluted":true}}')
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ name: "a" })
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })
})
