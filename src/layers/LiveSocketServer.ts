/**
 * The uWebSockets.js server for live sessions on WS_PORT at /ws. Refuses an Origin that is not
 * exactly on ALLOWED_ORIGINS, answers `ping` with `pong`, and closes every socket with 1001 on
 * shutdown.
 */

import type * as Uws from "uWebSockets.js"
import { Data, Effect, Either, Layer } from "effect"
import { CloseCode, decodeClientMessage, encodeServerMessage, type ServerMessage } from "../actors/LiveProtocol.ts"
import { Settings } from "./Settings.ts"
import { loadUws } from "./Uws.ts"

export class LiveSocketListenError extends Data.TaggedError("LiveSocketListenError")<{ readonly message: string }> {}

interface Connection {
  readonly id: number
  closed: boolean
}

const MAX_FRAME = 16 * 1024

export const make = Effect.gen(function* () {
  const uws = yield* loadUws
  const host = yield* Settings.host
  const port = yield* Settings.wsPort
  const allowedOrigins = new Set(yield* Settings.allowedOrigins)
  const sockets = new Set<Uws.WebSocket<Connection>>()
  let nextId = 0

  const send = (ws: Uws.WebSocket<Connection>, message: ServerMessage) => {
    if (!ws.getUserData().closed) ws.send(encodeServerMessage(message))
  }

  const app = uws.App().ws<Connection>("/ws", {
    maxPayloadLength: MAX_FRAME,
    idleTimeout: 120,
    sendPingsAutomatically: true,
    upgrade: (res, req, context) => {
      const origin = req.getHeader("origin")
      if (origin !== "" && !allowedOrigins.has(origin)) {
        res.cork(() => res.writeStatus("403 Forbidden").end("origin not allowed", true))
        return
      }
      res.upgrade<Connection>(
        { id: nextId++, closed: false },
        req.getHeader("sec-websocket-key"),
        req.getHeader("sec-websocket-protocol"),
        req.getHeader("sec-websocket-extensions"),
        context
      )
    },
    open: (ws) => {
      sockets.add(ws)
    },
    message: (ws, data, isBinary) => {
      if (isBinary) {
        send(ws, { type: "error", code: "invalid_message", message: "Send JSON text frames" })
        return
      }
      const decoded = decodeClientMessage(Buffer.from(data).toString("utf8"))
      if (Either.isLeft(decoded)) {
        send(ws, { type: "error", code: "invalid_message", message: "Not a valid message; see docs/live-protocol.md" })
        return
      }
      switch (decoded.right.type) {
        case "ping":
          send(ws, { type: "pong" })
      }
    },
    close: (ws) => {
      ws.getUserData().closed = true
      sockets.delete(ws)
    }
  })

  yield* Effect.acquireRelease(
    Effect.async<Uws.us_listen_socket, LiveSocketListenError>((resume) => {
      app.listen(host, port, (token) => {
        resume(
          token
            ? Effect.succeed(token)
            : Effect.fail(new LiveSocketListenError({ message: `cannot listen on ${host}:${port} (WS_PORT in use?)` }))
        )
      })
    }),
    (token) =>
      Effect.gen(function* () {
        uws.us_listen_socket_close(token)
        // `end` runs the close handler at once, which edits the set: iterate over a copy.
        for (const ws of [...sockets]) ws.end(CloseCode.goingAway, "server shutting down")
        yield* Effect.logInfo("ws: closed")
      })
  )
  yield* Effect.logInfo(`ws: listening on ws://${host}:${port}/ws`)
})

export const LiveSocketServerLive = Layer.scopedDiscard(make)
