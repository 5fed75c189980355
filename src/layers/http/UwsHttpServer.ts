/**
 * An @effect/platform `HttpServer` on uWebSockets.js, so `HttpLayerRouter.serve(...)` runs unchanged
 * with HTTP parsed and answered by uWS; `app` shares one uWS App (one port) with `.ws(...)` routes.
 * uWS rules kept: method, URL, headers and address are copied before the handler returns; body chunks
 * are copied (uWS neuters them); `onAborted` is set before anything suspends and interrupts the fiber;
 * writes are corked; after `end` or an abort the response is never touched again.
 * Measured, not wired (Main uses NodeHttpServer): 1.31× less CPU per request in `yarn bench:http-uws`,
 * under the 1.5× that would pay for losing the drain of requests in flight at shutdown (BENCHMARKS.md).
 * Not implemented: `upgrade` (use `.ws` routes), a streamed request body, unix sockets.
 */

import type * as Uws from "uWebSockets.js"
import { STATUS_CODES } from "node:http"
import * as Cookies from "@effect/platform/Cookies"
import * as Headers from "@effect/platform/Headers"
import * as HttpApp from "@effect/platform/HttpApp"
import * as IncomingMessage from "@effect/platform/HttpIncomingMessage"
import type { HttpMethod } from "@effect/platform/HttpMethod"
import type * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Multipart from "@effect/platform/Multipart"
import * as UrlParams from "@effect/platform/UrlParams"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { type Chunk, Effect, Inspectable, Layer, Option, Runtime, type Scope, Stream } from "effect"
import { loadUws } from "../live/Uws.ts"

export interface UwsHttpServerOptions {
  readonly port: number
  /** Listen address; every interface when absent (as node:http). */
  readonly host?: string | undefined
  /** Serve on this App (for example one that carries `.ws` routes); a fresh `App()` otherwise. */
  readonly app?: Uws.TemplatedApp | undefined
  /** Body bytes kept while a request arrives; past this its body fails to read. Default 10 MiB. */
  readonly maxBodySize?: number | undefined
}

const decoder = new TextDecoder()

/** One request's uWS response while it is valid, and its body as it arrives. */
class Exchange {
  aborted = false
  ended = false
  onAbort: (() => void) | undefined = undefined
  onWritable: (() => void) | undefined = undefined
  body: Uint8Array | undefined
  private chunks: Array<Uint8Array> = []
  private size = 0
  private waiter: (() => void) | undefined = undefined

  constructor(
    readonly res: Uws.HttpResponse,
    expectsBody: boolean,
    private readonly limit: number
  ) {
    this.body = expectsBody ? undefined : new Uint8Array(0)
  }

  abort() {
    this.aborted = true
    this.waiter?.()
    if (!this.ended) this.onAbort?.()
  }

  receive(chunk: ArrayBuffer, isLast: boolean) {
    this.size += chunk.byteLength
    if (this.size <= this.limit) this.chunks.push(new Uint8Array(chunk.slice(0)))
    else this.chunks = []
    if (!isLast) return
    this.body = this.size > this.limit ? undefined : Buffer.concat(this.chunks, this.size)
    this.chunks = []
    this.waiter?.()
  }

  /** The whole body; fails when the client went away or the body passed the limit. */
  read(request: HttpServerRequest.HttpServerRequest): Effect.Effect<Uint8Array, HttpServerError.RequestError> {
    return Effect.suspend(() => {
      if (this.body !== undefined) return Effect.succeed(this.body)
      if (this.size <= this.limit && !this.aborted) {
        return Effect.async<Uint8Array, HttpServerError.RequestError>((resume) => {
          this.waiter = () => resume(this.read(request))
        })
      }
      const description = this.aborted ? "client aborted the request" : `body larger than ${this.limit} bytes`
      return Effect.fail(new HttpServerError.RequestError({ request, reason: "Decode", description }))
    })
  }
}

/** uWS gives 4 or 16 raw bytes; this spells them as node:http does ("127.0.0.1", "::ffff:127.0.0.1", "::1"). */
const formatAddress = (raw: ArrayBuffer) => {
  const bytes = new Uint8Array(raw)
  if (bytes.length === 4) return bytes.join(".")
  if (bytes.length !== 16) return undefined
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return `::ffff:${bytes.subarray(12).join(".")}`
  }
  const groups = Array.from({ length: 8 }, (_, i) => ((bytes[2 * i]! << 8) | bytes[2 * i + 1]!).toString(16))
  return new URL(`http://[${groups.join(":")}]`).hostname.slice(1, -1)
}

/** HTTP/1.1: a request without Content-Length or Transfer-Encoding has no body (RFC 9112 §6.3). */
const hasBody = (headers: Record<string, string>) => {
  const length = headers["content-length"]
  return length !== undefined ? length !== "0" : headers["transfer-encoding"] !== undefined
}

/** Copies what the request handler needs out of `req` and `res` before the uWS handler returns. */
const readRequest = (res: Uws.HttpResponse, req: Uws.HttpRequest, limit: number) => {
  const method = req.getCaseSensitiveMethod().toUpperCase() as HttpMethod
  const query = req.getQuery()
  const url = query ? `${req.getUrl()}?${query}` : req.getUrl()
  // Inherits Headers' prototype (type id, redaction) without a copy.
  const headers = Object.create(Headers.empty) as Record<string, string>
  req.forEach((key, value) => {
    const previous = headers[key]
    headers[key] = previous === undefined ? value : `${previous}${key === "cookie" ? "; " : ", "}${value}`
  })
  const exchange = new Exchange(res, hasBody(headers), limit)
  res.onAborted(() => exchange.abort())
  if (exchange.body === undefined) res.onData((chunk, isLast) => exchange.receive(chunk, isLast))
  const address = formatAddress(res.getRemoteAddress())
  return new UwsServerRequest(exchange, url, method, headers as unknown as Headers.Headers, address)
}

class UwsServerRequest extends Inspectable.Class implements HttpServerRequest.HttpServerRequest {
  readonly [HttpServerRequest.TypeId]: HttpServerRequest.TypeId = HttpServerRequest.TypeId
  readonly [IncomingMessage.TypeId]: IncomingMessage.TypeId = IncomingMessage.TypeId
  private cachedCookies: Record<string, string> | undefined

  constructor(
    readonly source: Exchange,
    readonly originalUrl: string,
    readonly method: HttpMethod,
    readonly headers: Headers.Headers,
    private readonly address: string | undefined,
    readonly url = originalUrl
  ) {
    super()
  }

  modify(options: { readonly url?: string; readonly headers?: Headers.Headers; readonly remoteAddress?: string }) {
    const { source, originalUrl, method } = this
    const headers = options.headers ?? this.headers
    const address = options.remoteAddress ?? this.address
    return new UwsServerRequest(source, originalUrl, method, headers, address, options.url ?? this.url)
  }

  get remoteAddress() {
    return Option.fromNullable(this.address)
  }

  get cookies() {
    this.cachedCookies ??= Cookies.parseHeader(this.headers.cookie ?? "")
    return this.cachedCookies
  }

  private get bytes() {
    return Effect.flatMap(IncomingMessage.MaxBodySize, (max) =>
      Effect.filterOrFail(
        this.source.read(this),
        (bytes) => Option.isNone(max) || bytes.byteLength <= max.value,
        () => this.decodeError(new Error("request body too large"))
      )
    )
  }

  get arrayBuffer(): Effect.Effect<ArrayBuffer, HttpServerError.RequestError> {
    return Effect.map(this.bytes, (b) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer)
  }

  get text(): Effect.Effect<string, HttpServerError.RequestError> {
    return Effect.map(this.bytes, (bytes) => decoder.decode(bytes))
  }

  private parse<A>(f: (text: string) => A): Effect.Effect<A, HttpServerError.RequestError> {
    return Effect.tryMap(this.text, { try: f, catch: (cause) => this.decodeError(cause) })
  }

  get json() {
    return this.parse((text): unknown => (text === "" ? null : JSON.parse(text)))
  }

  get urlParamsBody() {
    return this.parse((text) => UrlParams.fromInput(new URLSearchParams(text)))
  }

  get stream(): Stream.Stream<Uint8Array, HttpServerError.RequestError> {
    return Stream.fromEffect(this.bytes)
  }

  get multipartStream(): Stream.Stream<Multipart.Part, Multipart.MultipartError> {
    return Stream.pipeThroughChannel(
      Stream.mapError(this.stream, (cause) => new Multipart.MultipartError({ reason: "InternalError", cause })),
      Multipart.makeChannel(this.headers)
    )
  }

  get multipart() {
    return Multipart.toPersisted(this.multipartStream)
  }

  get upgrade(): Effect.Effect<never, HttpServerError.RequestError> {
    const description = "not upgradeable: register WebSocket routes on the uWS App with .ws()"
    return Effect.fail(new HttpServerError.RequestError({ request: this, reason: "Decode", description }))
  }

  private decodeError(cause: unknown) {
    return new HttpServerError.RequestError({ request: this, reason: "Decode", cause })
  }

  toJSON(): unknown {
    return IncomingMessage.inspect(this, {
      _id: "@effect/platform/HttpServerRequest",
      method: this.method,
      url: this.originalUrl
    })
  }
}

const statusLines: Record<string, string> = {}
for (const [code, text] of Object.entries(STATUS_CODES)) statusLines[code] = `${code} ${text}`
const statusLine = (status: number, text: string | undefined) =>
  text !== undefined ? `${status} ${text}` : (statusLines[status] ?? String(status))

/** Status and headers, each Set-Cookie on its own line; uWS writes Content-Length itself. */
const writeHead = (res: Uws.HttpResponse, response: HttpServerResponse.HttpServerResponse) => {
  res.writeStatus(statusLine(response.status, response.statusText))
  const headers = response.headers
  for (const key in headers) if (key !== "content-length") res.writeHeader(key, headers[key]!)
  const cookies = Cookies.isEmpty(response.cookies) ? [] : Cookies.toSetCookieHeaders(response.cookies)
  for (const line of cookies) res.writeHeader("set-cookie", line)
}

/** The whole response in one corked write; nothing if the client went away or it was already sent. */
const finish = (
  exchange: Exchange,
  response: HttpServerResponse.HttpServerResponse,
  body?: Uws.RecognizedString,
  head = false
) => {
  if (exchange.aborted || exchange.ended) return
  exchange.ended = true
  const { res } = exchange
  res.cork(() => {
    writeHead(res, response)
    const length = response.headers["content-length"]
    if (head) res.endWithoutBody(length === undefined ? undefined : Number(length))
    else if (body !== undefined) res.end(body)
    else if (response.status === 204 || response.status === 304) res.endWithoutBody()
    else res.end()
  })
}

const writeChunk = (exchange: Exchange, chunk: Chunk.Chunk<Uint8Array>): Effect.Effect<void> => {
  if (exchange.aborted) return Effect.interrupt
  let flushed = true
  exchange.res.cork(() => {
    for (const bytes of chunk) flushed = exchange.res.write(bytes) && flushed
  })
  if (flushed) return Effect.void
  return Effect.async<void>((resume) => {
    exchange.onWritable = () => resume(Effect.void)
  })
}

/** Chunked transfer, waiting for `onWritable` whenever uWS reports backpressure. */
const streamBody = (
  exchange: Exchange,
  response: HttpServerResponse.HttpServerResponse,
  stream: Stream.Stream<Uint8Array, unknown>
) =>
  Effect.suspend(() => {
    if (exchange.aborted || exchange.ended) return Effect.void
    const { res } = exchange
    // A resume left over from an earlier wait does nothing: Effect.async takes the first only.
    res.onWritable(() => {
      exchange.onWritable?.()
      return true
    })
    res.cork(() => writeHead(res, response))
    return Stream.runForEachChunk(Stream.orDie(stream), (chunk) => writeChunk(exchange, chunk)).pipe(
      Effect.onExit((exit) =>
        Effect.sync(() => {
          if (exchange.aborted || exchange.ended) return
          exchange.ended = true
          // A stream that failed after its head went out can only be cut short.
          if (exit._tag === "Success") res.cork(() => res.end())
          else res.close()
        })
      )
    )
  })

const rawBody = (exchange: Exchange, response: HttpServerResponse.HttpServerResponse, body: unknown) => {
  if (typeof body === "string" || body instanceof Uint8Array || body instanceof ArrayBuffer) {
    return Effect.sync(() => finish(exchange, response, body))
  }
  if (typeof body === "object" && body !== null && Symbol.asyncIterator in body) {
    const stream = Stream.fromAsyncIterable(body as AsyncIterable<Uint8Array>, (cause) => cause)
    return streamBody(exchange, response, stream)
  }
  return Effect.die(new Error(`UwsHttpServer cannot send a raw body of type ${typeof body}`))
}

const formDataBody = (exchange: Exchange, response: HttpServerResponse.HttpServerResponse, form: FormData) =>
  Effect.promise(async () => {
    const encoded = new Response(form)
    const bytes = new Uint8Array(await encoded.arrayBuffer())
    const withType = HttpServerResponse.setHeader(response, "content-type", encoded.headers.get("content-type")!)
    finish(exchange, withType, bytes)
  })

const respond = (
  request: HttpServerRequest.HttpServerRequest,
  response: HttpServerResponse.HttpServerResponse
): Effect.Effect<void> => {
  const exchange = (request as UwsServerRequest).source
  if (exchange.aborted || exchange.ended) return Effect.void
  const body = response.body
  if (request.method === "HEAD") return Effect.sync(() => finish(exchange, response, undefined, true))
  switch (body._tag) {
    case "Empty":
      return Effect.sync(() => finish(exchange, response))
    case "Uint8Array":
      return Effect.sync(() => finish(exchange, response, body.body))
    case "Raw":
      return rawBody(exchange, response, body.body)
    case "FormData":
      return formDataBody(exchange, response, body.formData)
    case "Stream":
      return streamBody(exchange, response, body.stream)
  }
}

type Handler = (res: Uws.HttpResponse, req: Uws.HttpRequest) => void

/** Before `serve` and after its scope closes: 503, so a request is never left unanswered. */
const notServing: Handler = (res) => void res.cork(() => res.writeStatus("503 Service Unavailable").end())

const makeHandler = (
  httpApp: HttpApp.Default<unknown>,
  middleware: HttpMiddleware.HttpMiddleware | undefined,
  limit: number
) =>
  Effect.map(Effect.runtime<never>(), (runtime): Handler => {
    const runFork = Runtime.runFork(runtime)
    const handled = HttpApp.toHandled(httpApp, respond, middleware)
    return (res, req) => {
      const request = readRequest(res, req, limit)
      // Starts synchronously: a handler that needs no I/O answers inside this uWS callback.
      const fiber = runFork(Effect.provideService(handled, HttpServerRequest.HttpServerRequest, request))
      const { source } = request
      if (!source.ended) source.onAbort = () => fiber.unsafeInterruptAsFork(HttpServerError.clientAbortFiberId)
    }
  })

const listen = (uws: typeof Uws, app: Uws.TemplatedApp, host: string | undefined, port: number) =>
  Effect.acquireRelease(
    Effect.async<Uws.us_listen_socket, HttpServerError.ServeError>((resume) => {
      const done = (token: Uws.us_listen_socket | false) => {
        if (token) return resume(Effect.succeed(token))
        const cause = new Error(`uWebSockets.js could not listen on ${host ?? "*"}:${port}`)
        resume(Effect.fail(new HttpServerError.ServeError({ cause })))
      }
      if (host === undefined) app.listen(port, done)
      else app.listen(host, port, done)
    }),
    (token) => Effect.sync(() => uws.us_listen_socket_close(token))
  )

export const make = (
  options: UwsHttpServerOptions
): Effect.Effect<HttpServer.HttpServer, HttpServerError.ServeError, Scope.Scope> =>
  Effect.gen(function* () {
    const uws = yield* Effect.mapError(loadUws, (cause) => new HttpServerError.ServeError({ cause }))
    const app = options.app ?? uws.App()
    const limit = options.maxBodySize ?? 10 * 1024 * 1024
    // uWS cannot remove a route, so the one catch-all route calls whichever handler is current.
    let current = notServing
    app.any("/*", (res, req) => current(res, req))
    const token = yield* listen(uws, app, options.host, options.port)
    return HttpServer.make({
      address: { _tag: "TcpAddress", hostname: options.host ?? "0.0.0.0", port: uws.us_socket_local_port(token) },
      serve: (httpApp, middleware) =>
        Effect.gen(function* () {
          current = yield* makeHandler(httpApp, middleware, limit)
          yield* Effect.addFinalizer(() => Effect.sync(() => (current = notServing)))
        })
    })
  })

export const layerServer = (options: UwsHttpServerOptions) => Layer.scoped(HttpServer.HttpServer, make(options))

/** The same shape as `NodeHttpServer.layer`: the server plus Node's HttpPlatform, Etag and NodeContext. */
export const layer = (options: UwsHttpServerOptions) => Layer.merge(layerServer(options), NodeHttpServer.layerContext)
