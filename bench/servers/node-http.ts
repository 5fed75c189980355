/** Baseline for bench:http: a bare node:http server answering GET /health/live as ours does. */
import { createServer } from "node:http"

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? "127.0.0.1"

const server = createServer((request, response) => {
  if (request.method === "GET" && request.url === "/health/live") {
    const body = JSON.stringify({ status: "ok" })
    response.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) })
    response.end(body)
    return
  }
  response.writeHead(404, { "content-type": "application/json" })
  response.end(JSON.stringify({ code: "not_found" }))
})

server.listen(port, host)
process.on("SIGTERM", () => process.exit(0))
