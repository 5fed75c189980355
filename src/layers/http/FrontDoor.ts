/**
 * The front door: what every HTTP request gets on Node's request callback, before the hot paths
 * (HotPaths.ts) or the platform's handler see it, in plain code rather than in a fiber:
 *
 *  - a request id (the client's `x-request-id` when it looks like one, else a new one) and the
 *    client address (TRUST_PROXY decides whether `X-Forwarded-For` counts), written into the
 *    request's own headers, where handlers, audit entries and log lines of both doors read them
 *    (RequestMeta.ts, Logging.ts), overwriting whatever the client sent in them;
 *  - the answer's headers: security headers, CORS for the origins on ALLOWED_ORIGINS, the request
 *    id and `cache-control: no-store`, set on the response first so that a route's own headers
 *    (its `cache-control`, say) win;
 *  - one log line when the answer has been sent (`http request`, at info; health probes at debug).
 *
 * What decides an answer (unknown routes, bodies over the limit, error codes) stays in the router's
 * middleware (HttpMiddleware.ts).
 */
import { randomUUID } from "node:crypto"
import type { IncomingMessage, ServerResponse } from "node:http"
import { Effect, LogLevel, Runtime } from "effect"
import { Settings } from "../Settings.ts"
import { clientIp } from "./ClientIp.ts"
import { CLIENT_IP_HEADER } from "./RequestMeta.ts"

/** A client's `x-request-id` is kept when it looks like one; otherwise the server makes one. */
export const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

/** The headers of every answer but CORS and the request id; `/docs` is a page with its own CSP. */
export const answerHeaders = (publicUrl: string) => {
  const security: Record<string, string> = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    ...(publicUrl.startsWith("https:") ? { "strict-transport-security": "max-age=63072000; includeSubDomains" } : {})
  }
  return {
    api: { ...security, "content-security-policy": "default-src 'none'; frame-ancestors 'none'" },
    docs: security
  }
}

/** CORS for the origins on ALLOWED_ORIGINS only, matched exactly; nothing is sent to others. */
export const corsHeaders =
  (allowedOrigins: ReadonlySet<string>) =>
  (origin: string | undefined): Record<string, string> | undefined =>
    origin !== undefined && allowedOrigins.has(origin)
      ? {
          "access-control-allow-origin": origin,
          "access-control-allow-credentials": "true",
          "access-control-expose-headers": "x-request-id, x-permission-revision, retry-after",
          vary: "Origin"
        }
      : undefined

export const pathOf = (url: string) => {
  const at = url.indexOf("?")
  return at === -1 ? url : url.slice(0, at)
}

/** Prepares a request and its response as above; returns the request id. */
export type FrontDoor = (request: IncomingMessage, response: ServerResponse) => string

export const makeFrontDoor = Effect.gen(function* () {
  const trustProxy = yield* Settings.trustProxy
  const { api, docs } = answerHeaders(yield* Settings.publicUrl)
  const apiHeaders = Object.entries({ ...api, "cache-control": "no-store" })
  const docsHeaders = Object.entries({ ...docs, "cache-control": "no-store" })
  const cors = corsHeaders(new Set(yield* Settings.allowedOrigins))
  const logLevel = yield* Settings.logLevel
  const logs = {
    health: LogLevel.greaterThanEqual(LogLevel.Debug, logLevel),
    requests: LogLevel.greaterThanEqual(LogLevel.Info, logLevel)
  }
  const runSync = Runtime.runSync(yield* Effect.runtime<never>())

  const logLine = (request: IncomingMessage, response: ServerResponse, path: string, started: number) => {
    const headers = request.headers as Record<string, string | undefined>
    const annotations = {
      requestId: headers["x-request-id"],
      method: request.method,
      path,
      status: response.statusCode,
      durationMs: Date.now() - started,
      ip: headers[CLIENT_IP_HEADER]
    }
    const line = path.startsWith("/health/") ? Effect.logDebug("http request") : Effect.logInfo("http request")
    runSync(Effect.annotateLogs(line, annotations))
  }

  return ((request, response) => {
    const headers = request.headers as Record<string, string | undefined>
    const given = headers["x-request-id"]
    const requestId = given !== undefined && REQUEST_ID.test(given) ? given : randomUUID()
    headers["x-request-id"] = requestId
    headers[CLIENT_IP_HEADER] = clientIp(request.socket.remoteAddress, headers["x-forwarded-for"], trustProxy)
    const path = pathOf(request.url ?? "/")
    for (const [name, value] of path === "/docs" ? docsHeaders : apiHeaders) response.setHeader(name, value)
    const allowed = headers.origin?.includes(",") ? undefined : cors(headers.origin)
    if (allowed !== undefined) for (const name in allowed) response.setHeader(name, allowed[name]!)
    response.setHeader("x-request-id", requestId)
    if (path.startsWith("/health/") ? logs.health : logs.requests) {
      const started = Date.now()
      response.once("finish", () => logLine(request, response, path, started))
    }
    return requestId
  }) satisfies FrontDoor
})
