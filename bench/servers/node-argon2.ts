/**
 * Baseline for bench:auth: a bare node:http server whose POST /v1/auth/login only verifies the
 * password against one argon2id hash (m=19456, t=2, p=1) and answers, with no limit on hashes in
 * flight: the floor for a login with these parameters on this machine.
 */

import { createServer } from "node:http"
import { hash, verify } from "@node-rs/argon2"

const port = Number(process.env.PORT ?? 3000)
const password = process.env.BENCH_PASSWORD ?? "a benchmark passphrase"
const stored = await hash(password, { algorithm: 2, memoryCost: 19456, timeCost: 2, parallelism: 1 })

const server = createServer((request, response) => {
  if (request.method !== "POST") {
    response.writeHead(404, { "content-type": "application/json" })
    response.end('{"code":"not_found"}')
    return
  }
  let body = ""
  request.on("data", (chunk) => {
    body += chunk
  })
  request.on("end", () => {
    const given = (JSON.parse(body) as { password: string }).password
    verify(stored, given).then((ok) => {
      response.writeHead(ok ? 200 : 401, { "content-type": "application/json" })
      response.end(ok ? '{"ok":true}' : '{"code":"invalid_credentials"}')
    })
  })
})

server.listen(port, "127.0.0.1")
process.on("SIGTERM", () => process.exit(0))
