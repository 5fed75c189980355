/**
 * Baseline for bench:freshness: a plain `ws` server (no compression) that accepts any number of
 * sockets on PORT and, on `POST /send`, sends the request body as one text frame to the one socket
 * that connected with `?probe` in its URL (the others are only held open), then answers
 * `{"sent": n}`. `GET /stats` answers `{"clients": n}`.
 */
import { createServer, type ServerResponse } from "node:http"
import WebSocket, { WebSocketServer } from "ws"

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? "127.0.0.1"

const reply = (response: ServerResponse, status: number, body: unknown) => {
  const text = JSON.stringify(body)
  response.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
  response.end(text)
}

let probe: WebSocket | undefined

const server = createServer((request, response) => {
  if (request.method === "POST" && request.url === "/send") {
    let body = ""
    request.setEncoding("utf8")
    request.on("data", (chunk) => {
      body += chunk
    })
    request.on("end", () => {
      let sent = 0
      if (probe !== undefined && probe.readyState === WebSocket.OPEN) {
        probe.send(body)
        sent = 1
      }
      reply(response, 200, { sent })
    })
    return
  }
  if (request.method === "GET" && request.url === "/stats") return reply(response, 200, { clients: wss.clients.size })
  reply(response, 404, { code: "not_found" })
})

const wss = new WebSocketServer({ server, perMessageDeflate: false })
wss.on("connection", (socket, request) => {
  if (request.url?.includes("probe") === true) probe = socket
})

server.listen(port, host)
process.on("SIGTERM", () => process.exit(0))
