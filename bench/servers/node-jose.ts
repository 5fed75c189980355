/**
 * Baseline for bench:auth: a bare node:http server that does only what token verification needs,
 * a jose EdDSA verify with the key imported once, then answers with the subject.
 */

import { createServer } from "node:http"
import { importJWK, jwtVerify } from "jose"

const port = Number(process.env.PORT ?? 3000)
const [jwk] = (
  JSON.parse(process.env.JWT_PRIVATE_KEYS ?? "{}") as { keys: Array<{ kty: string; crv: string; x: string }> }
).keys
if (jwk === undefined) throw new Error("JWT_PRIVATE_KEYS is required")
const key = await importJWK({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, alg: "EdDSA" }, "EdDSA")

const server = createServer((request, response) => {
  const token = request.headers.authorization?.slice("Bearer ".length) ?? ""
  jwtVerify(token, key, { algorithms: ["EdDSA"], typ: "at+jwt", audience: process.env.JWT_AUDIENCE ?? "" }).then(
    ({ payload }) => {
      const body = JSON.stringify({ id: payload.sub })
      response.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) })
      response.end(body)
    },
    () => {
      response.writeHead(401, { "content-type": "application/json" })
      response.end('{"code":"invalid_token"}')
    }
  )
})

server.listen(port, "127.0.0.1")
process.on("SIGTERM", () => process.exit(0))
