/**
 * The live protocol: JSON text frames on the WebSocket, described once here and shared by the
 * server and the client. Every frame has a `type`.
 */
import { Schema } from "effect"

export const Ping = Schema.Struct({ type: Schema.Literal("ping") })

export const ClientMessage = Schema.Union(Ping)
export type ClientMessage = typeof ClientMessage.Type

export const Pong = Schema.Struct({ type: Schema.Literal("pong") })

export const ErrorMessage = Schema.Struct({
  type: Schema.Literal("error"),
  code: Schema.String,
  message: Schema.String,
  id: Schema.optional(Schema.String)
})

export const ServerMessage = Schema.Union(Pong, ErrorMessage)
export type ServerMessage = typeof ServerMessage.Type

/** Close codes the server uses; 4xxx codes are this protocol's own. */
export const CloseCode = {
  /** The server is shutting down; reconnect to another node. */
  goingAway: 1001
} as const

export const decodeClientMessage = Schema.decodeUnknownEither(Schema.parseJson(ClientMessage))
export const encodeServerMessage = (message: ServerMessage) => JSON.stringify(message)
