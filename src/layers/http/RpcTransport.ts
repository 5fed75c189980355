/**
 * `POST /rpc` as this server reads it. @effect/rpc appends each message's own `headers` after the
 * HTTP request's, and a later value wins, so a message could restate what the middleware derived
 * from the transport (client address, user agent, request id). Here a message keeps only the
 * headers a client legitimately sends per call (`authorization`, how the RPC client carries its
 * token); everything else comes from the HTTP request. One request carries at most
 * `MAX_RPC_MESSAGES` messages, so one POST cannot fan out into unbounded work; every limit the
 * operations apply (per IP, per account) applies to each message as it would to a request.
 */
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import { RpcSerialization, RpcServer } from "@effect/rpc"
import { Effect, Layer } from "effect"
import { PayloadTooLarge } from "../../rpc/Errors.ts"
import { errorResponse } from "./HttpMiddleware.ts"

/** The most messages (NDJSON lines) one `POST /rpc` may carry. */
export const MAX_RPC_MESSAGES = 20

/** Headers a message may carry itself; any other header of a message is dropped. */
const MESSAGE_HEADERS = new Set(["authorization"])

const ownHeadersOnly = (message: unknown): unknown => {
  if (typeof message !== "object" || message === null) return message
  const { _tag, headers } = message as { _tag?: unknown; headers?: unknown }
  if (_tag !== "Request") return message
  const kept = Array.isArray(headers)
    ? headers.filter(
        (entry): entry is [string, string] =>
          Array.isArray(entry) && typeof entry[0] === "string" && MESSAGE_HEADERS.has(entry[0].toLowerCase())
      )
    : []
  return { ...message, headers: kept }
}

/** NDJSON, with each request message stripped of the headers only the transport may set. */
export const RpcSerializationLive = Layer.succeed(
  RpcSerialization.RpcSerialization,
  RpcSerialization.RpcSerialization.of({
    contentType: RpcSerialization.ndjson.contentType,
    includesFraming: RpcSerialization.ndjson.includesFraming,
    unsafeMake: () => {
      const parser = RpcSerialization.ndjson.unsafeMake()
      return { encode: parser.encode, decode: (data) => parser.decode(data).map(ownHeadersOnly) }
    }
  })
)

/** Non-blank lines: the messages an NDJSON body holds. */
export const countMessages = (body: string) => {
  let count = 0
  let start = 0
  while (start <= body.length) {
    const end = body.indexOf("\n", start)
    const line = body.slice(start, end === -1 ? body.length : end)
    if (line.trim() !== "") count += 1
    if (end === -1) break
    start = end + 1
  }
  return count
}

const tooManyMessages = (count: number) =>
  errorResponse(
    new PayloadTooLarge({
      message: `One POST /rpc carries at most ${MAX_RPC_MESSAGES} messages; this one carried ${count}. Send the rest in further requests`
    })
  )

/** The RPC server's HTTP protocol on `POST /rpc`, behind the message cap. */
export const RpcProtocolLive = Layer.effect(
  RpcServer.Protocol,
  Effect.gen(function* () {
    const router = yield* HttpLayerRouter.HttpRouter
    const { httpApp, protocol } = yield* RpcServer.makeProtocolWithHttpApp
    yield* router.add(
      "POST",
      "/rpc",
      Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
        // The body is read once and kept by the request, so the RPC app reads the same text.
        Effect.flatMap(Effect.option(request.text), (text) => {
          const count = text._tag === "Some" ? countMessages(text.value) : 0
          return count > MAX_RPC_MESSAGES ? Effect.succeed(tooManyMessages(count)) : httpApp
        })
      )
    )
    return protocol
  })
)
