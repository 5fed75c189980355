import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { OpenApi } from "@effect/platform"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import WebSocket from "ws"
import { servedApi } from "../../src/rpc/Api.ts"
import { ApiClient } from "../../src/rpc/client.ts"
import { liveSession } from "../support/LiveSocket.ts"
import { tokenIn, waitForMail } from "../support/Mailbox.ts"
import { type ServerProcess, startServer } from "../support/ServerProcess.ts"

const portIsFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = createServer()
    server.once("error", () => resolve(false))
    server.listen(port, "0.0.0.0", () => server.close(() => resolve(true)))
  })

const openSocket = (url: string, headers: Record<string, string> = {}) =>
  new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(url, { headers })
    ws.once("open", () => resolve(ws))
    ws.once("unexpected-response", (_request, response) => reject(new Error(`HTTP ${response.statusCode}`)))
    ws.once("error", reject)
  })

// The README's promise: `yarn start` on a fresh machine, nothing configured. So no environment at all
// (not even PATH), the default ports 3000/3001, and DATA_DIR defaulting to ./.data in a fresh directory.
describe("the server started with no environment at all (embedded default)", () => {
  let server: ServerProcess
  let cwd: string

  beforeAll(async () => {
    for (const port of [3000, 3001]) {
      if (!(await portIsFree(port))) throw new Error(`port ${port} is in use; this test needs the default ports`)
    }
    cwd = mkdtempSync(join(tmpdir(), "lps-embedded-"))
    server = await startServer({}, { cwd, port: 3000, wsPort: 3001, timeoutMs: 90_000 })
  }, 120_000)

  afterAll(async () => {
    await server?.stop("SIGKILL")
    rmSync(cwd, { recursive: true, force: true })
  })

  it("says it runs embedded and single-node, with its data under ./.data", () => {
    expect(server.output()).toMatch(/mode: embedded PGlite \+ in-process .*single node only/)
    expect(server.output()).toContain(join(cwd, ".data", "pglite"))
  })

  it("is ready, with the database and the event stream up", async () => {
    const response = await fetch("http://127.0.0.1:3000/health/ready")
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ status: "ready", checks: { database: "up", events: "up" } })
  })

  it("serves an OpenAPI 3.1 document generated from the API", async () => {
    const response = await fetch("http://127.0.0.1:3000/openapi.json")
    expect(response.status).toBe(200)
    const spec = (await response.json()) as { openapi: string; paths: Record<string, unknown> }
    expect(spec.openapi).toBe("3.1.0")
    expect(Object.keys(spec.paths)).toEqual(expect.arrayContaining(["/health/live", "/health/ready"]))
    // The document Spectral and swagger-parser check (test/rpc/OpenApiLint.test.ts), naming this server.
    expect(spec).toEqual(JSON.parse(JSON.stringify(OpenApi.fromApi(servedApi("http://localhost:3000")))))
  })

  it("serves the API docs page", async () => {
    const response = await fetch("http://127.0.0.1:3000/docs")
    expect(response.status).toBe(200)
    expect(response.headers.get("content-type")).toContain("text/html")
    expect(await response.text()).toContain("Live Permission Server")
  })

  it("answers the typed RPC client", async () => {
    const result = await Effect.gen(function* () {
      const client = yield* ApiClient.make("http://127.0.0.1:3000/rpc")
      return { live: yield* client.health.live(), ready: yield* client.health.ready() }
    }).pipe(Effect.scoped, Effect.runPromise)
    expect(result.live.status).toBe("ok")
    expect(result.ready.checks).toEqual({ database: "up", events: "up" })
  })

  it("signs a user up, in and out through REST and the RPC client", async () => {
    const email = `embedded-${Date.now()}@example.com`
    const password = "embedded mode passphrase"
    const post = (path: string, body: unknown, token?: string) =>
      fetch(`http://127.0.0.1:3000${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(body)
      })
    expect((await post("/v1/auth/register", { email, password, name: "Emma" })).status).toBe(202)
    const tokens = (await (await post("/v1/auth/login", { email, password })).json()) as {
      accessToken: string
      refreshToken: string
    }
    const me = await Effect.gen(function* () {
      const client = yield* ApiClient.make("http://127.0.0.1:3000/rpc", { accessToken: () => tokens.accessToken })
      return yield* client.auth.me()
    }).pipe(Effect.scoped, Effect.runPromise)
    expect(me.email).toBe(email)
    const refreshed = await post("/v1/auth/refresh", { refreshToken: tokens.refreshToken })
    expect(refreshed.status).toBe(200)
    const next = (await refreshed.json()) as { accessToken: string }
    expect((await post("/v1/auth/logout", {}, next.accessToken)).status).toBe(204)
    const after = await fetch("http://127.0.0.1:3000/v1/me", {
      headers: { authorization: `Bearer ${next.accessToken}` }
    })
    expect(after.status).toBe(401)
    // Embedded mode writes mail to DATA_DIR/mail and keys to DATA_DIR/keys.json.
    expect(readdirSync(join(cwd, ".data", "mail")).some((file) => file.endsWith(".eml"))).toBe(true)
    expect(existsSync(join(cwd, ".data", "keys.json"))).toBe(true)
  })

  it("answers concurrent reads and transactional writes correctly on the single embedded database", async () => {
    const email = `concurrent-${Date.now()}@example.com`
    const password = "concurrent embedded passphrase"
    const post = (path: string, body: unknown, token?: string) =>
      fetch(`http://127.0.0.1:3000${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(body)
      })
    await post("/v1/auth/register", { email, password, name: "Cora" })
    const { accessToken } = (await (await post("/v1/auth/login", { email, password })).json()) as {
      accessToken: string
    }
    const stamp = Date.now()
    const replies = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        i % 2 === 0
          ? post("/v1/orgs", { name: `Org ${i}`, slug: `c-${stamp}-${i}` }, accessToken)
          : fetch("http://127.0.0.1:3000/v1/me", { headers: { authorization: `Bearer ${accessToken}` } })
      )
    )
    expect(replies.map((r) => r.status).sort()).toEqual([...Array(30).fill(200), ...Array(30).fill(201)])
    const mine = (await (
      await fetch("http://127.0.0.1:3000/v1/orgs", { headers: { authorization: `Bearer ${accessToken}` } })
    ).json()) as Array<{ roles: Array<string> }>
    expect(mine).toHaveLength(30)
    expect(mine.every((org) => org.roles.join() === "owner")).toBe(true)
  })

  it("runs the RBAC flow: invitation by mail, roles, an expiring assignment, checks on both doors, audit", async () => {
    const base = "http://127.0.0.1:3000"
    const call = async <A = Record<string, unknown>>(method: string, path: string, token?: string, body?: unknown) => {
      const response = await fetch(`${base}${path}`, {
        method,
        headers: {
          ...(body === undefined ? {} : { "content-type": "application/json" }),
          ...(token === undefined ? {} : { authorization: `Bearer ${token}` })
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) })
      })
      return { status: response.status, body: (await response.json()) as A }
    }
    const signIn = async (label: string) => {
      const email = `${label}-${Date.now()}@example.com`
      const password = "embedded rbac passphrase"
      await call("POST", "/v1/auth/register", undefined, { email, password, name: label })
      const { body } = await call<{ accessToken: string }>("POST", "/v1/auth/login", undefined, { email, password })
      const me = await call<{ id: string }>("GET", "/v1/me", body.accessToken)
      return { email, token: body.accessToken, userId: me.body.id }
    }
    const owner = await signIn("rbac-owner")
    const member = await signIn("rbac-member")
    const org = await call<{ id: string }>("POST", "/v1/orgs", owner.token, {
      name: "Embedded",
      slug: `emb-${Date.now()}`
    })
    expect(org.status).toBe(201)
    const path = `/v1/orgs/${org.body.id}`

    expect((await call("POST", `${path}/invitations`, owner.token, { email: member.email })).status).toBe(201)
    const mail = await waitForMail(join(cwd, ".data"), (m) => m.to.includes(member.email) && /invit/i.test(m.subject))
    const accepted = await call("POST", "/v1/invitations/accept", member.token, { token: tokenIn(mail) })
    expect(accepted.status).toBe(200)

    await call("POST", `${path}/permissions`, owner.token, { key: "docs:read" })
    const role = await call<{ role: { id: string } }>("POST", `${path}/roles`, owner.token, {
      name: "reader",
      grants: [{ permission: "docs:read", effect: "allow" }]
    })
    expect(role.status).toBe(201)
    const expiresAt = Date.now() + 2_000
    const given = await call<{ revision: string }>("POST", `${path}/assignments`, owner.token, {
      userId: member.userId,
      roleId: role.body.role.id,
      expiresAt: new Date(expiresAt).toISOString()
    })
    expect(given.status).toBe(201)

    const check = () =>
      call<{ allowed: boolean }>("POST", `${path}/check`, member.token, {
        permission: "docs:read",
        minRevision: given.body.revision
      })
    expect((await check()).body.allowed).toBe(true)
    const viaRpc = await Effect.gen(function* () {
      const client = yield* ApiClient.make(`${base}/rpc`, { accessToken: () => member.token })
      return yield* client.authz.check({ organizationId: org.body.id, permission: "docs:read" })
    }).pipe(Effect.scoped, Effect.runPromise)
    expect(viaRpc.allowed).toBe(true)

    await new Promise((resolve) => setTimeout(resolve, expiresAt - Date.now() + 1_200))
    expect((await check()).body.allowed).toBe(false)
    const audit = await call<{ items: Array<{ action: string; target: string }> }>(
      "GET",
      `${path}/audit?action=assignment.expired`,
      owner.token
    )
    expect(audit.body.items).toHaveLength(1)
  }, 30_000)

  /** A signed-in owner of a fresh organization, and a live-socket ticket for it. */
  const liveTicket = async () => {
    const base = "http://127.0.0.1:3000"
    const email = `live-${Date.now()}-${Math.random().toString(36).slice(2)}@example.com`
    const password = "embedded live passphrase"
    const post = async (path: string, body: unknown, token?: string) =>
      (await fetch(`${base}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(body)
      }).then((r) => r.json())) as Record<string, string>
    await post("/v1/auth/register", { email, password, name: "Live" })
    const { accessToken } = await post("/v1/auth/login", { email, password })
    const org = await post("/v1/orgs", { name: "Live", slug: `live-${Date.now()}` }, accessToken)
    const another = async () => (await post("/v1/realtime/tickets", { organizationId: org.id }, accessToken)).ticket!
    const issued = await post("/v1/realtime/tickets", { organizationId: org.id }, accessToken)
    return {
      ticket: issued.ticket!,
      url: issued.url!,
      organizationId: org.id!,
      accessToken: accessToken!,
      post,
      another
    }
  }

  it("runs live sessions single-node: hello, a pushed diff, ping, and an error for a malformed frame", async () => {
    const { ticket, url, organizationId, accessToken, post, another } = await liveTicket()
    expect(url).toBe(`ws://localhost:3001/ws?ticket=${ticket}`)
    let first = true
    const socket = await liveSession(async () => {
      const next = first ? ticket : await another()
      first = false
      return `ws://127.0.0.1:3001/ws?ticket=${next}`
    })
    expect(await socket.next()).toMatchObject({ type: "hello", organizationId, roles: ["owner"] })
    // The owner holds `*`: a new catalog key is pushed to their session.
    await post(`/v1/orgs/${organizationId}/permissions`, { key: "docs:read" }, accessToken)
    expect(await socket.next()).toMatchObject({ type: "permissions", added: ["docs:read"], removed: [] })
    socket.send({ type: "ping" })
    expect(await socket.next()).toEqual({ type: "pong" })
    socket.send("{not json")
    expect(await socket.next()).toMatchObject({ type: "error", code: "invalid_message" })
    socket.send({ type: "ping" })
    expect(await socket.next()).toEqual({ type: "pong" })
    socket.close()
  })

  it("refuses a WebSocket from an Origin that is not allowed (none is, by default)", async () => {
    await expect(openSocket("ws://127.0.0.1:3001/ws", { origin: "https://evil.example" })).rejects.toThrow("HTTP 403")
  })

  it("on SIGTERM closes live sockets with 1001 and exits 0 within 10 s", async () => {
    const { another } = await liveTicket()
    const socket = await liveSession(async () => `ws://127.0.0.1:3001/ws?ticket=${await another()}`)
    expect(await socket.next()).toMatchObject({ type: "hello" })
    const started = Date.now()
    const code = await server.stop("SIGTERM")
    expect((await socket.closed).code).toBe(1001)
    expect(code).toBe(0)
    expect(Date.now() - started).toBeLessThan(10_000)
  })
})
