/**
 * Baseline for bench:push: a plain `ws` server (no compression) that accepts any number of sockets
 * on PORT and, on `POST /broadcast`, sends the request body as one text frame to every open socket
 * (the broadcast loop of the `ws` README), then answers `{"sent": n}`. `GET /stats` answers
 * `{"clients": n}`.
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

const server = createServer((request, response) => {
  if (request.method === "POST" && request.url === "/broadcast") {
    let body = ""
    request.setEncoding("utf8")
    request.on("data", (chunk) => {
      body += chunk
    })
    request.on("end", () => {
      let sent = 0
      for (const client of wss.clients) {
        if (client.readyState === WebSocket.OPEN) {
          client.send(body)
          sent += 1
        }
      }
      reply(response, 200, { sent })
    })
    return
  }
  if (request.method === "GET" && request.url === "/stats") return reply(response, 200, { clients: wss.clients.size })
  reply(response, 404, { code: "not_found" })
})

const wss = new WebSocketServer({ server, perMessageDeflate: false })

server.listen(port, host)
process.on("SIGTERM", () => process.exit(0))
