/**
 * The uWebSockets.js server for live sessions on WS_PORT at /ws (docs/live-protocol.md).
 *
 * The upgrade refuses, before any socket opens: an Origin not exactly on ALLOWED_ORIGINS (403), a
 * missing, expired or used ticket (401), a user at the socket cap of this node (429). Each opened
 * socket gets one session actor (src/actors/SessionActor.ts), whose fiber runs only while it has
 * something to do: closing the socket unregisters it and interrupts that fiber. Frames larger than
 * 16 KiB close the connection (1009; beyond 64 KiB it is cut); idle connections are pinged and
 * closed. The limits
 * and refusals are the protocol's (`LiveLimits`, `UpgradeRefusal` in src/rpc/LiveProtocol.ts). On
 * shutdown, and only then, every socket is closed with 1001. `GET /metrics` on the same port
 * reports the live-session counters (Prometheus text) to a bearer of `METRICS_TOKEN`, or, when no
 * token is set, to loopback clients only (S52). A request carrying more than one `Origin` is
 * refused like a foreign one: whichever copy a proxy or uWS would read, none may decide.
 */

import type * as Uws from "uWebSockets.js"
import { createHash, timingSafeEqual } from "node:crypto"
import { Data, Effect, FiberSet, Layer, Option, Redacted } from "effect"
import {
  drained,
  type Inbound,
  makeActorEnv,
  rateLimitedFrame,
  receive,
  type Session,
  socketClosed,
  startSession
} from "../../actors/SessionActor.ts"
import { SessionRegistry } from "../../actors/SessionRegistry.ts"
import { CloseCode, LiveLimits, MAX_FRAME_BYTES, UpgradeRefusal } from "../../rpc/LiveProtocol.ts"
import { Realtime, type TicketClaims } from "../../services/Realtime.ts"
import { Settings } from "../Settings.ts"
import { loadUws } from "./Uws.ts"

export class LiveSocketListenError extends Data.TaggedError("LiveSocketListenError")<{ readonly message: string }> {}

interface Connection {
  readonly id: number
  readonly claims: TicketClaims
  readonly resumeAt: string | undefined
  closed: boolean
  session: Session | undefined
}

const REVISION = /^\d{1,30}$/

/** The `Origin` headers of an upgrade request: uWS `getHeader` shows only the first. */
const originsOf = (req: Uws.HttpRequest) => {
  const origins: Array<string> = []
  req.forEach((key, value) => {
    if (key.toLowerCase() === "origin") origins.push(value)
  })
  return origins
}

/** 127.0.0.0/8 or ::1, in the 4- or 16-byte form uWS gives (IPv4 may come mapped: ::ffff:a.b.c.d). */
export const isLoopback = (address: ArrayBuffer) => {
  const bytes = new Uint8Array(address)
  if (bytes.length === 4) return bytes[0] === 127
  if (bytes.length !== 16) return false
  const zeros = (from: number, to: number) => bytes.subarray(from, to).every((byte) => byte === 0)
  if (zeros(0, 15) && bytes[15] === 1) return true
  return zeros(0, 10) && bytes[10] === 0xff && bytes[11] === 0xff && bytes[12] === 127
}

const digest = (text: string) => createHash("sha256").update(text).digest()

/** Who may read `/metrics`: a bearer of the token, or without one a loopback client. */
const metricsAccess = (token: Option.Option<Redacted.Redacted<string>>) => {
  const expected = Option.map(token, (value) => digest(`Bearer ${Redacted.value(value)}`))
  return (authorization: string, remote: ArrayBuffer) =>
    Option.match(expected, {
      onNone: () => isLoopback(remote),
      onSome: (wanted) => timingSafeEqual(digest(authorization), wanted)
    })
}

/** The status line and body of each refusal, written once. */
const refusals = Object.fromEntries(
  Object.entries(UpgradeRefusal).map(([name, { status, statusText, body }]) => [
    name,
    { status: `${status} ${statusText}`, body: JSON.stringify(body) }
  ])
) as Record<keyof typeof UpgradeRefusal, { readonly status: string; readonly body: string }>

export const make = Effect.gen(function* () {
  const uws = yield* loadUws
  const host = yield* Settings.host
  const port = yield* Settings.wsPort
  const allowedOrigins = new Set(yield* Settings.allowedOrigins)
  const maxSocketsPerUser = yield* Settings.maxSocketsPerUser
  const mayReadMetrics = metricsAccess(yield* Settings.metricsToken)
  const realtime = yield* Realtime
  const registry = yield* SessionRegistry
  const sockets = new Set<Uws.WebSocket<Connection>>()
  const upgrading = new Map<string, number>()
  const runPromise = yield* FiberSet.makeRuntimePromise<never>()
  const env = yield* makeActorEnv(yield* FiberSet.makeRuntime<never>())
  let nextId = 0

  const refuse = (res: Uws.HttpResponse, refusal: keyof typeof UpgradeRefusal) =>
    res.cork(() => {
      const { status, body } = refusals[refusal]
      res.writeStatus(status).writeHeader("content-type", "application/json").end(body, true)
    })

  const socketsOf = (userId: string) => [...registry.byUser(userId)].length + (upgrading.get(userId) ?? 0)

  const app = uws.App().ws<Connection>("/ws", {
    // Frames up to 4× the limit are read and refused with 1009; bigger ones are cut by uWS itself.
    maxPayloadLength: MAX_FRAME_BYTES * 4,
    idleTimeout: LiveLimits.idleTimeoutSeconds,
    sendPingsAutomatically: true,
    // The actor stops sending diffs far below this and closes slow clients itself (4002).
    maxBackpressure: LiveLimits.hardBufferBytes * 2,
    closeOnBackpressureLimit: 1,
    upgrade: (res, req, context) => {
      // `req` is gone once this returns: read all of it first.
      const origins = originsOf(req)
      const origin = origins[0] ?? ""
      const ticket = req.getQuery("ticket") ?? ""
      const revision = req.getQuery("revision") ?? ""
      const key = req.getHeader("sec-websocket-key")
      const protocol = req.getHeader("sec-websocket-protocol")
      const extensions = req.getHeader("sec-websocket-extensions")
      if (origins.length > 1 || (origin !== "" && !allowedOrigins.has(origin))) {
        refuse(res, "origin")
        return
      }
      let aborted = false
      res.onAborted(() => {
        aborted = true
      })
      runPromise(Effect.either(realtime.redeem(ticket))).then(
        (redeemed) => {
          if (aborted) return
          if (redeemed._tag === "Left") {
            return refuse(res, "unavailable")
          }
          if (Option.isNone(redeemed.right)) {
            return refuse(res, "ticket")
          }
          const claims = redeemed.right.value
          if (socketsOf(claims.userId) >= maxSocketsPerUser) {
            return refuse(res, "sockets")
          }
          upgrading.set(claims.userId, (upgrading.get(claims.userId) ?? 0) + 1)
          const connection: Connection = {
            id: nextId++,
            claims,
            resumeAt: REVISION.test(revision) ? revision : undefined,
            closed: false,
            session: undefined
          }
          res.cork(() => res.upgrade<Connection>(connection, key, protocol, extensions, context))
        },
        () => {
          if (!aborted) refuse(res, "failed")
        }
      )
    },
    open: (ws) => {
      sockets.add(ws)
      const connection = ws.getUserData()
      const pending = (upgrading.get(connection.claims.userId) ?? 1) - 1
      if (pending > 0) upgrading.set(connection.claims.userId, pending)
      else upgrading.delete(connection.claims.userId)
      connection.session = startSession(env, {
        connectionId: connection.id,
        socket: {
          isOpen: () => !connection.closed,
          send: (text) => {
            if (!connection.closed) ws.send(text, false)
          },
          bufferedAmount: () => (connection.closed ? 0 : ws.getBufferedAmount()),
          close: (code, reason) => {
            if (!connection.closed) ws.end(code, reason)
          }
        },
        claims: connection.claims,
        resumeAt: connection.resumeAt
      })
    },
    message: (ws, data, isBinary) => {
      const { session } = ws.getUserData()
      if (session === undefined) return
      if (data.byteLength > MAX_FRAME_BYTES) {
        ws.end(CloseCode.tooBig, "frame too large")
        return
      }
      // The buffer is only valid during this call: copy it.
      const inbound: Inbound = isBinary
        ? { _tag: "Binary" }
        : { _tag: "Frame", text: Buffer.from(data).toString("utf8") }
      if (!receive(session, inbound)) {
        ws.send(rateLimitedFrame)
      }
    },
    drain: (ws) => {
      const { session } = ws.getUserData()
      if (session !== undefined) drained(session)
    },
    close: (ws) => {
      const connection = ws.getUserData()
      connection.closed = true
      sockets.delete(ws)
      if (connection.session !== undefined) socketClosed(connection.session)
    }
  })

  app.get("/metrics", (res, req) => {
    if (!mayReadMetrics(req.getHeader("authorization"), res.getRemoteAddress())) {
      res.cork(() => {
        res
          .writeStatus("401 Unauthorized")
          .writeHeader("www-authenticate", 'Bearer realm="metrics"')
          .writeHeader("content-type", "text/plain")
          .end("metrics need the METRICS_TOKEN bearer token\n")
      })
      return
    }
    const { counters } = registry
    const lines = [
      "# TYPE live_sessions gauge",
      `live_sessions ${registry.size}`,
      "# TYPE live_sockets gauge",
      `live_sockets ${sockets.size}`,
      "# TYPE live_actor_fibers gauge",
      `live_actor_fibers ${registry.actorsRunning}`,
      "# TYPE live_timers gauge",
      `live_timers ${registry.timers}`,
      "# TYPE live_shared_sets gauge",
      `live_shared_sets ${registry.fanOut.interned.size}`,
      "# TYPE live_index_entries gauge",
      `live_index_entries ${registry.indexEntries}`,
      ...Object.entries(counters).flatMap(([name, value]) => [
        `# TYPE live_${name}_total counter`,
        `live_${name}_total ${value}`
      ]),
      "# TYPE process_resident_memory_bytes gauge",
      `process_resident_memory_bytes ${process.memoryUsage.rss()}`
    ]
    res.cork(() => {
      res.writeHeader("content-type", "text/plain; version=0.0.4").end(`${lines.join("\n")}\n`)
    })
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
