/**
 * `POST /rpc` as this server reads it. @effect/rpc appends each message's own `headers` after the
 * HTTP request's, and a later value wins, so a message could restate what the middleware derived
 * from the transport (client address, user agent, request id). Here a message keeps only the
 * headers a client legitimately sends per call (`authorization`, how the RPC client carries its
 * token); everything else comes from the HTTP request. One request carries at most
 * `MAX_RPC_MESSAGES` messages, so one POST cannot fan out into unbounded work; every limit the
 * operations apply (per IP, per account) applies to each message as it would to a request. A
 * message whose payload does not decode is answered as the REST door answers such a body: a typed
 * `BadRequest` with code `invalid_payload` and a message naming the fields, not a defect.
 */
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import { RpcSerialization, RpcServer } from "@effect/rpc"
import { Effect, Either, Layer, ParseResult, Schema } from "effect"
import { BadRequest, PayloadTooLarge } from "../../rpc/Errors.ts"
import { Rpcs } from "../../rpc/Rpcs.ts"
import { describeIssues, errorResponse } from "./HttpMiddleware.ts"

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

/** Each Rpc's payload decoder, by tag: the same schema the RPC server decodes with. */
const payloadDecoders = new Map<string, (payload: unknown) => Either.Either<unknown, ParseResult.ParseError>>(
  [...Rpcs.requests.values()].map((rpc) => [
    rpc._tag,
    Schema.decodeUnknownEither(rpc.payloadSchema as Schema.Schema<unknown, unknown, never>)
  ])
)
const encodeBadRequest = Schema.encodeSync(BadRequest)

/** Why a request message's payload does not decode, if it does not (an unknown tag is the server's to answer). */
const payloadProblem = (message: unknown): { readonly requestId: string; readonly error: BadRequest } | undefined => {
  if (typeof message !== "object" || message === null) return undefined
  const { _tag, id, tag, payload } = message as { _tag?: unknown; id?: unknown; tag?: unknown; payload?: unknown }
  if (_tag !== "Request" || typeof tag !== "string") return undefined
  const decode = payloadDecoders.get(tag)
  if (decode === undefined) return undefined
  const decoded = decode(payload)
  if (Either.isRight(decoded)) return undefined
  const { message: described } = describeIssues(ParseResult.ArrayFormatter.formatErrorSync(decoded.left))
  return { requestId: String(id), error: new BadRequest({ code: "invalid_payload", message: described }) }
}

/**
 * NDJSON, with each request message stripped of the headers only the transport may set, and the
 * server's defect for a payload that did not decode replaced by the typed `BadRequest` it is.
 */
export const RpcSerializationLive = Layer.succeed(
  RpcSerialization.RpcSerialization,
  RpcSerialization.RpcSerialization.of({
    contentType: RpcSerialization.ndjson.contentType,
    includesFraming: RpcSerialization.ndjson.includesFraming,
    unsafeMake: () => {
      const parser = RpcSerialization.ndjson.unsafeMake()
      const undecodable = new Map<string, BadRequest>()
      const typed = (response: unknown): unknown => {
        if (typeof response !== "object" || response === null) return response
        const { _tag, requestId, exit } = response as {
          _tag?: unknown
          requestId?: unknown
          exit?: { _tag?: unknown; cause?: { _tag?: unknown } }
        }
        if (_tag !== "Exit" || exit?._tag !== "Failure" || exit.cause?._tag !== "Die") return response
        const error = undecodable.get(String(requestId))
        if (error === undefined) return response
        undecodable.delete(String(requestId))
        return { ...response, exit: { _tag: "Failure", cause: { _tag: "Fail", error: encodeBadRequest(error) } } }
      }
      return {
        encode: (response) => parser.encode(Array.isArray(response) ? response.map(typed) : typed(response)),
        decode: (data) =>
          parser.decode(data).map((message) => {
            const problem = payloadProblem(message)
            if (problem !== undefined) undecodable.set(problem.requestId, problem.error)
            return ownHeadersOnly(message)
          })
      }
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
