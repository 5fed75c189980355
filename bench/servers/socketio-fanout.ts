/**
 * Baseline for bench:push: a Socket.IO 4 server, WebSocket transport only (no long-polling, no
 * compression), that accepts any number of clients on PORT and, on `POST /broadcast`, emits the
 * JSON request body to every client as the event `permissions` (`io.emit`), then answers
 * `{"sent": n}`. `GET /stats` answers `{"clients": n}`.
 */
import { createServer, type ServerResponse } from "node:http"
import { Server } from "socket.io"

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
      io.emit("permissions", JSON.parse(body))
      reply(response, 200, { sent: io.engine.clientsCount })
    })
    return
  }
  if (request.method === "GET" && request.url === "/stats") {
    return reply(response, 200, { clients: io.engine.clientsCount })
  }
  if (!request.url?.startsWith("/socket.io/")) reply(response, 404, { code: "not_found" })
})

const io = new Server(server, { transports: ["websocket"], serveClient: false, perMessageDeflate: false })

server.listen(port, host)
process.on("SIGTERM", () => process.exit(0))
