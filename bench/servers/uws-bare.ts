/** Floor for bench:http-uws: uWebSockets.js alone answering GET /health/live, no Effect in the path. */
import { Effect } from "effect"
import { loadUws } from "../../src/layers/live/Uws.ts"

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? "127.0.0.1"
const uws = Effect.runSync(loadUws)
const body = JSON.stringify({ status: "ok" })

uws
  .App()
  .get("/health/live", (res) => {
    res.cork(() => res.writeStatus("200 OK").writeHeader("content-type", "application/json").end(body))
  })
  .any("/*", (res) => {
    res.cork(() =>
      res.writeStatus("404 Not Found").writeHeader("content-type", "application/json").end('{"code":"not_found"}')
    )
  })
  .listen(host, port, (token) => {
    if (!token) {
      console.error(`uWebSockets.js could not listen on ${host}:${port}`)
      process.exit(1)
    }
  })
process.on("SIGTERM", () => process.exit(0))
