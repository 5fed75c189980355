/**
 * Floor for bench:check's live-socket case: uWebSockets.js alone, speaking just enough of the live
 * protocol for bench/liveCheckClient.ts. `POST /v1/realtime/tickets` answers a ticket without
 * looking at anything; `/ws` sends `hello` on open and answers every `check` with a constant
 * `check.result` carrying its id (a JSON parse, a JSON encode, a send). No Effect, no permissions,
 * no rate limit: what a live check costs below our code on this machine.
 */
import { Effect } from "effect"
import { loadUws } from "../../src/layers/live/Uws.ts"

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? "127.0.0.1"
const uws = Effect.runSync(loadUws)
const ticket = JSON.stringify({ ticket: "floor", url: `ws://${host}:${port}/ws?ticket=floor`, expiresIn: 30 })
const decoder = new TextDecoder()

uws
  .App()
  .get("/health/live", (res) => {
    res.cork(() => res.writeStatus("200 OK").writeHeader("content-type", "application/json").end('{"status":"ok"}'))
  })
  .post("/v1/realtime/tickets", (res) => {
    res.onAborted(() => {})
    res.onData((_chunk, last) => {
      if (last)
        res.cork(() => res.writeStatus("201 Created").writeHeader("content-type", "application/json").end(ticket))
    })
  })
  .ws("/ws", {
    open: (ws) => {
      ws.send(JSON.stringify({ type: "hello" }))
    },
    message: (ws, data) => {
      const message = JSON.parse(decoder.decode(data)) as { id: string }
      ws.send(JSON.stringify({ type: "check.result", id: message.id, allowed: true, reason: "floor", revision: "1" }))
    }
  })
  .listen(host, port, (token) => {
    if (!token) {
      console.error(`uWebSockets.js could not listen on ${host}:${port}`)
      process.exit(1)
    }
  })
process.on("SIGTERM", () => process.exit(0))
