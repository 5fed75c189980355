/**
 * The named alternative of bench:check part 3: node-casbin (CommonJS build, RBAC with domains, the
 * faster matcher order) behind a bare node:http server, with the bench policy loaded from
 * CASBIN_POLICY. No authentication, no storage: `POST /check {request: [sub, dom, obj, act]}`.
 */
import { readFileSync } from "node:fs"
import { createServer } from "node:http"
import { createRequire } from "node:module"
import type * as Casbin from "casbin"

const casbin = createRequire(import.meta.url)("casbin") as typeof Casbin
const port = Number(process.env.PORT ?? 3000)
const { policies, groupings } = JSON.parse(readFileSync(process.env.CASBIN_POLICY ?? "", "utf8")) as {
  policies: Array<Array<string>>
  groupings: Array<Array<string>>
}

const model = casbin.newModelFromString(
  [
    "[request_definition]",
    "r = sub, dom, obj, act",
    "[policy_definition]",
    "p = sub, dom, obj, act, eft",
    "[role_definition]",
    "g = _, _, _",
    "[policy_effect]",
    "e = some(where (p.eft == allow)) && !some(where (p.eft == deny))",
    "[matchers]",
    `m = keyMatch(r.obj, p.obj) && (r.act == p.act || p.act == "*") && (p.dom == "*" || p.dom == r.dom) && g(r.sub, p.sub, r.dom)`
  ].join("\n")
)
const enforcer = await casbin.newEnforcer(model)
await enforcer.addPolicies(policies)
await enforcer.addGroupingPolicies(groupings)

const server = createServer((request, response) => {
  if (request.url === "/health/live") {
    response.writeHead(200, { "content-type": "application/json" })
    response.end('{"status":"live"}')
    return
  }
  const chunks: Array<Buffer> = []
  request.on("data", (chunk: Buffer) => chunks.push(chunk))
  request.on("end", () => {
    const { request: args } = JSON.parse(Buffer.concat(chunks).toString()) as { request: Array<string> }
    const body = JSON.stringify({ allowed: enforcer.enforceSync(...args) })
    response.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) })
    response.end(body)
  })
})

server.listen(port, "127.0.0.1")
process.on("SIGTERM", () => process.exit(0))
