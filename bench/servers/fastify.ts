/**
 * Baseline for bench:http: Fastify 5 (logger off) answering GET /health/live as ours does, the
 * idiomatic way (response schema, so fast-json-stringify encodes it). Fastify always appends
 * `; charset=utf-8` to a JSON content type; the media type and body are the same as ours.
 */
import { fastify } from "fastify"

const port = Number(process.env.PORT ?? 3000)
const host = process.env.HOST ?? "127.0.0.1"

const app = fastify({ logger: false })

const liveness = {
  type: "object",
  properties: { status: { type: "string", const: "ok" } },
  required: ["status"]
} as const

app.get("/health/live", { schema: { response: { 200: liveness } } }, async () => ({ status: "ok" }))

await app.listen({ port, host })
process.on("SIGTERM", () => process.exit(0))
