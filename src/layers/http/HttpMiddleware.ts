/**
 * What every route's answer gets in the router: a body size limit, CORS preflights, and JSON errors
 * with a stable `code` for unknown routes, wrong methods, bad bodies and defects. The request id,
 * the client address, the common headers and the log line are set before, on Node's callback
 * (FrontDoor.ts).
 */

import { randomUUID } from "node:crypto"
import * as FileSystem from "@effect/platform/FileSystem"
import * as HttpApi from "@effect/platform/HttpApi"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import { RouteNotFound } from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Cause, Effect, Layer, LogLevel, Option, Schema } from "effect"
import { Api } from "../../rpc/Api.ts"
import {
  BadRequest,
  InternalError,
  LengthRequired,
  MethodNotAllowed,
  NotFound,
  PayloadTooLarge
} from "../../rpc/Errors.ts"
import { Settings } from "../Settings.ts"
import { corsHeaders, pathOf } from "./FrontDoor.ts"

type WireError = BadRequest | NotFound | MethodNotAllowed | LengthRequired | PayloadTooLarge | InternalError
const WireError = Schema.Union(BadRequest, NotFound, MethodNotAllowed, LengthRequired, PayloadTooLarge, InternalError)
const encodeError = Schema.encodeSync(WireError)

const statusOf: Record<WireError["_tag"], number> = {
  BadRequest: 400,
  NotFound: 404,
  MethodNotAllowed: 405,
  LengthRequired: 411,
  PayloadTooLarge: 413,
  InternalError: 500
}

export const errorResponse = (error: WireError, headers: Record<string, string> = {}) =>
  HttpServerResponse.unsafeJson(encodeError(error), { status: statusOf[error._tag], headers })

/** Routes served outside the HttpApi, for telling 404 from 405. */
const extraRoutes = (docsEnabled: boolean): ReadonlyArray<readonly [string, string]> => [
  ["GET", "/openapi.json"],
  ...(docsEnabled ? [["GET", "/docs"] as const] : []),
  ["POST", "/rpc"]
]

const routeTable = (docsEnabled: boolean) => {
  const routes: Array<{ method: string; pattern: RegExp }> = []
  const add = (method: string, path: string) =>
    routes.push({ method, pattern: new RegExp(`^${path.replace(/:[^/]+/g, "[^/]+")}/?$`) })
  HttpApi.reflect(Api, {
    onGroup: () => {},
    onEndpoint: ({ endpoint }) => add(endpoint.method, endpoint.path)
  })
  for (const [method, path] of extraRoutes(docsEnabled)) add(method, path)
  return (path: string) => [...new Set(routes.filter((r) => r.pattern.test(path)).map((r) => r.method))]
}

const BODY_METHODS = new Set(["POST", "PUT", "PATCH", "DELETE"])

interface Issue {
  readonly path: ReadonlyArray<unknown>
  readonly message: string
}

/**
 * A decode failure's issues without the values sent, and one message naming each field: Schema
 * messages end with ", actual <the value sent>", and what was sent (a password, say) is never echoed.
 */
export const describeIssues = <I extends Issue>(raw: ReadonlyArray<I>) => {
  const issues = raw.map((issue) => ({ ...issue, message: String(issue.message).replace(/,\s*actual[\s\S]*$/, "") }))
  const message = issues
    .map((issue) => (issue.path.length > 0 ? `${issue.path.join(".")}: ${issue.message}` : issue.message))
    .join("; ")
  return { issues, message }
}

/**
 * HttpApi answers a payload that fails its Schema with `HttpApiDecodeError`; give that body the same
 * `code` every other error has and a message naming the fields.
 */
const withDecodeErrorCode = (response: HttpServerResponse.HttpServerResponse) => {
  if (response.status !== 400 || response.body._tag !== "Uint8Array") return response
  try {
    const body = JSON.parse(new TextDecoder().decode(response.body.body))
    if (body?._tag !== "HttpApiDecodeError" || !Array.isArray(body.issues)) return response
    const { issues, message } = describeIssues(body.issues)
    return HttpServerResponse.unsafeJson(
      { ...body, issues, code: "invalid_payload", message },
      { status: 400, headers: response.headers }
    )
  } catch {
    return response
  }
}

/** A 429 body carries `retryAfter` seconds; say it in the standard header too. */
const withRetryAfter = (response: HttpServerResponse.HttpServerResponse) => {
  if (response.status !== 429 || response.body._tag !== "Uint8Array") return response
  try {
    const body = JSON.parse(new TextDecoder().decode(response.body.body))
    return typeof body?.retryAfter === "number"
      ? HttpServerResponse.setHeader(response, "retry-after", String(body.retryAfter))
      : response
  } catch {
    return response
  }
}

/**
 * A body nested thousands of levels deep parses, but checking or describing it recurses past the
 * stack: that is the client's error, not ours.
 */
const isStackOverflow = (cause: Cause.Cause<unknown>) =>
  Option.match(Cause.dieOption(cause), {
    onNone: () => false,
    onSome: (defect) => defect instanceof RangeError && /call stack/i.test(defect.message)
  })

const isDecodeDefect = (cause: Cause.Cause<unknown>) =>
  Option.match(Cause.dieOption(cause), {
    onNone: () => false,
    onSome: (defect) =>
      typeof defect === "object" &&
      defect !== null &&
      "_tag" in defect &&
      defect._tag === "RequestError" &&
      "reason" in defect &&
      defect.reason === "Decode"
  })

/**
 * The body size limit where bodies are read (HttpApi payloads, /rpc), set once for the server rather
 * than per request: requests that announce a larger body are refused before it is read (`guardBody`).
 */
export const BodyLimitLive = Layer.effect(
  HttpIncomingMessage.MaxBodySize,
  Effect.map(Settings.maxBodySize, (max) => Option.some(FileSystem.Size(max)))
)

export const GlobalMiddleware = Layer.unwrapEffect(
  Effect.gen(function* () {
    const maxBodySize = yield* Settings.maxBodySize
    const allowedMethods = routeTable(yield* Settings.docsEnabled)

    const guardBody = (request: HttpServerRequest.HttpServerRequest): Option.Option<WireError> => {
      const length = request.headers["content-length"]
      if (length !== undefined) {
        return Number(length) > maxBodySize
          ? Option.some(new PayloadTooLarge({ message: `The request body is larger than ${maxBodySize} bytes` }))
          : Option.none()
      }
      if (BODY_METHODS.has(request.method) && request.headers["transfer-encoding"] !== undefined) {
        return Option.some(new LengthRequired({ message: "Send the request body with a Content-Length header" }))
      }
      return Option.none()
    }

    const notFound = (request: HttpServerRequest.HttpServerRequest) => {
      const path = pathOf(request.url)
      const methods = allowedMethods(path)
      return methods.length === 0
        ? errorResponse(new NotFound({ message: `No route for ${request.method} ${path}` }))
        : errorResponse(new MethodNotAllowed({ message: `${request.method} is not allowed on ${path}` }), {
            allow: methods.join(", ")
          })
    }

    /** A failure no handler answered: a JSON error with its code, and a log line for a 500. */
    const recover =
      (request: HttpServerRequest.HttpServerRequest, requestId: string) => (cause: Cause.Cause<unknown>) => {
        if (Cause.isInterruptedOnly(cause)) return Effect.failCause(cause) as never
        const failure = Cause.failureOption(cause)
        if (Option.isSome(failure) && failure.value instanceof RouteNotFound) return Effect.succeed(notFound(request))
        if (isStackOverflow(cause)) {
          return Effect.succeed(
            errorResponse(new BadRequest({ code: "invalid_payload", message: "The request body is nested too deeply" }))
          )
        }
        if (isDecodeDefect(cause)) {
          return Effect.succeed(
            errorResponse(new BadRequest({ code: "invalid_json", message: "The request body is not valid JSON" }))
          )
        }
        return Effect.logError("unhandled error", cause).pipe(
          Effect.annotateLogs({ requestId }),
          Effect.as(
            errorResponse(
              new InternalError({
                message: "Something went wrong on our side; the request id identifies it in our logs"
              })
            )
          )
        )
      }

    /** The route's answer, with the error codes every answer has; bodies over the limit never read. */
    const handle = <E>(
      httpApp: Effect.Effect<HttpServerResponse.HttpServerResponse, E | RouteNotFound>,
      request: HttpServerRequest.HttpServerRequest,
      requestId: string
    ): Effect.Effect<HttpServerResponse.HttpServerResponse, E> =>
      Option.match(guardBody(request), {
        onSome: (error) => Effect.succeed(errorResponse(error)),
        onNone: () =>
          Effect.matchCauseEffect(httpApp, {
            onSuccess: (response) => Effect.succeed(withRetryAfter(withDecodeErrorCode(response))),
            onFailure: recover(request, requestId)
          }) as Effect.Effect<HttpServerResponse.HttpServerResponse, E>
      })

    const cors = corsHeaders(new Set(yield* Settings.allowedOrigins))

    const preflight = (allowed: Record<string, string> | undefined) =>
      HttpServerResponse.empty({
        status: 204,
        headers:
          allowed === undefined
            ? {}
            : {
                ...allowed,
                "access-control-allow-methods": "GET, HEAD, POST, PUT, PATCH, DELETE",
                "access-control-allow-headers": "authorization, content-type, x-request-id",
                "access-control-max-age": "600"
              }
      })

    const twoOrigins = errorResponse(
      new BadRequest({ code: "invalid_payload", message: "Send at most one Origin header" })
    )

    // The request id, the client address, the answer's common headers and the log line are the
    // front door's (FrontDoor.ts), on Node's callback: this keeps what decides the answer.
    return HttpLayerRouter.middleware<{ handles: RouteNotFound }>()(
      (httpApp) =>
        Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
          const headers = request.headers
          const origin = headers.origin
          // Node joins repeated headers with ", " (no origin holds a comma): which one counts must not be
          // left to whoever reads the first, so a request naming two origins is refused outright.
          if (origin?.includes(",")) return Effect.succeed(twoOrigins)
          if (request.method === "OPTIONS" && headers["access-control-request-method"] !== undefined) {
            return Effect.succeed(preflight(cors(origin)))
          }
          return handle(httpApp, request, headers["x-request-id"] ?? "unknown")
        }),
      { global: true }
    )
  })
)
