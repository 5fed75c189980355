/**
 * A live socket opens only for a session, membership and user that are live when it opens (S47):
 * a ticket minted before the session ended (logout, password reset, user disabled, member removed)
 * opens nothing, and a revocation racing the open still closes the socket. And the socket port's
 * own doors (S52): `/metrics` needs the token, an upgrade carrying two `Origin` headers is refused.
 * Real Postgres and Redis, two server processes, raw `ws` sockets; tickets and endings through
 * HTTP and through the RPC client.
 */
import { connect } from "node:net"
import { Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ApiClient } from "../../src/rpc/client.ts"
import { rest, STRONG_PASSWORD, type TokenPairBody } from "../support/AuthClient.ts"
import { rpcAt } from "../support/E2e.ts"
import { openSocket, Refused, type TestSocket } from "../support/LiveSocket.ts"
import { tokenIn, waitForMail } from "../support/Mailbox.ts"
import type { ServerProcess } from "../support/ServerProcess.ts"
import { createOrganization, signUp, tenant, type User } from "../support/Tenant.ts"
import { startTestNode, type TestNode } from "../support/TestNode.ts"

const ORIGIN = "https://app.example.com"
const ADMIN = { email: `live-open-admin-${Date.now()}@example.com`, password: "live open admin passphrase" }
const METRICS_TOKEN = "metrics-token-for-the-test-0123456789"
const ENDINGS = ["logout", "password reset", "user disable", "member removal"] as const
type Ending = (typeof ENDINGS)[number]

/** How a socket opened with a ticket ended up: refused at the upgrade, or the frames it got and how it closed. */
type Outcome =
  | { readonly refused: number }
  | { readonly frames: ReadonlyArray<Record<string, unknown>>; readonly code: number }

/** Opens `url` and waits (bounded) until the server has refused it or closed it. */
const outcomeOf = async (url: string, timeoutMs = 10_000): Promise<Outcome> => {
  let socket: TestSocket
  try {
    socket = await openSocket(url, { origin: ORIGIN })
  } catch (error) {
    if (error instanceof Refused) return { refused: error.status }
    throw error
  }
  const timer = setTimeout(() => socket.close(), timeoutMs)
  const { code } = await socket.closed
  clearTimeout(timer)
  return { frames: socket.frames, code }
}

/** Nothing was shown: refused at the upgrade, or `revoked` and 4001 with no `hello` before. */
const expectNothingShown = (outcome: Outcome, reason: string) => {
  if ("refused" in outcome) {
    expect(outcome.refused).toBe(401)
    return
  }
  expect(outcome.frames).toEqual([{ type: "revoked", reason }])
  expect(outcome.code).toBe(4001)
}

describe("live sockets open only for live sessions (S47)", () => {
  let node: TestNode
  let a: ServerProcess
  let b: ServerProcess
  let api: ReturnType<typeof rest>
  let owner: User
  let org: ReturnType<typeof tenant>

  beforeAll(async () => {
    node = await startTestNode({
      TRUST_PROXY: "1",
      AUTH_IP_RATE_LIMIT: "1000",
      ALLOWED_ORIGINS: ORIGIN,
      MAX_SOCKETS_PER_USER: "50",
      ADMIN_EMAIL: ADMIN.email,
      ADMIN_PASSWORD: ADMIN.password,
      METRICS_TOKEN
    })
    a = node.server
    b = await node.another()
    api = rest(a.url)
    owner = await signUp(api, "open-owner")
    org = tenant(api, node.dataDir, owner, await createOrganization(api, owner, "open"))
  }, 120_000)

  afterAll(() => node?.stop())

  /** A new member's ticket URL for node B, minted through the RPC client. */
  const ticketOverRpc = async (member: User) => {
    const issued = await rpcAt(a.url)(member.token)(
      Effect.flatMap(ApiClient, (client) => client.realtime.ticket({ organizationId: org.organizationId }))
    )
    return `${b.wsUrl}?ticket=${issued.ticket}`
  }

  const newMember = async (label: string) => {
    const member = await signUp(api, label)
    await org.join(member, ["member"])
    return member
  }

  it("a ticket minted before logout (RPC) opens nothing (S47)", async () => {
    const member = await newMember("open-logout")
    const url = await ticketOverRpc(member)
    await rpcAt(a.url)(member.token)(Effect.flatMap(ApiClient, (client) => client.auth.logout()))
    expectNothingShown(await outcomeOf(url), "logout")
  })

  it("a ticket minted before a password reset opens nothing (S47)", async () => {
    const member = await newMember("open-reset")
    const url = `${b.wsUrl}?ticket=${(await org.ticket(member)).ticket}`
    expect((await api.call("POST", "/v1/auth/password/forgot", { body: { email: member.email } })).status).toBe(202)
    const token = tokenIn(
      await waitForMail(node.dataDir, (m) => m.to.includes(member.email) && m.subject === "Reset your password")
    )
    const reset = await api.call("POST", "/v1/auth/password/reset", {
      body: { token, password: "a brand new passphrase for the reset" }
    })
    expect(reset.status).toBe(204)
    expectNothingShown(await outcomeOf(url), "password_changed")
  })

  it("a ticket minted before the user was disabled (RPC) opens nothing (S47)", async () => {
    const member = await newMember("open-disabled")
    const url = `${b.wsUrl}?ticket=${(await org.ticket(member)).ticket}`
    const admin = (await api.login(ADMIN.email, ADMIN.password)).body as TokenPairBody
    await rpcAt(a.url)(admin.accessToken)(
      Effect.flatMap(ApiClient, (client) => client.admin.disableUser({ userId: member.userId }))
    )
    expectNothingShown(await outcomeOf(url), "user_disabled")
  })

  it("a ticket minted before the member was removed opens nothing (S47)", async () => {
    const member = await newMember("open-removed")
    const url = `${b.wsUrl}?ticket=${(await org.ticket(member)).ticket}`
    const removed = await api.call("DELETE", `${org.path}/members/${member.userId}`, { token: owner.token })
    expect(removed.status).toBe(200)
    expectNothingShown(await outcomeOf(url), "member_removed")
  })

  /** Each ending, ready to fire for `member`: what it does, and what the server answers. */
  const endingFor = async (ending: Ending, member: User) => {
    switch (ending) {
      case "logout":
        return () => api.call("POST", "/v1/auth/logout", { token: member.token })
      case "password reset": {
        expect((await api.call("POST", "/v1/auth/password/forgot", { body: { email: member.email } })).status).toBe(202)
        const token = tokenIn(
          await waitForMail(node.dataDir, (m) => m.to.includes(member.email) && m.subject === "Reset your password")
        )
        return () =>
          api.call("POST", "/v1/auth/password/reset", { body: { token, password: "a brand new passphrase, racing" } })
      }
      case "user disable": {
        const admin = (await api.login(ADMIN.email, ADMIN.password)).body as TokenPairBody
        return () => api.call("POST", `/v1/admin/users/${member.userId}/disable`, { token: admin.accessToken })
      }
      case "member removal":
        return () => api.call("DELETE", `${org.path}/members/${member.userId}`, { token: owner.token })
    }
  }

  it.each(ENDINGS)(
    "a %s racing the open always leaves the socket closed, never open after a hello, 12 times (S47)",
    async (ending) => {
      const outcomes = await Promise.all(
        Array.from({ length: 12 }, async (_, i) => {
          const member = await newMember(`open-race-${ending.replace(" ", "-")}-${i}`)
          const end = await endingFor(ending, member)
          const url = `${(i % 2 === 0 ? a : b).wsUrl}?ticket=${(await org.ticket(member)).ticket}`
          // Fired together, staggered: the ending commits somewhere around the ticket's redemption and the hello.
          const socket = openSocket(url, { origin: ORIGIN }).catch((error: unknown) => error)
          await new Promise((resolve) => setTimeout(resolve, (i * 5) % 30))
          expect([200, 204]).toContain((await end()).status)
          const opened = await socket
          if (opened instanceof Refused) return { closed: true, code: opened.status, hello: false }
          if (opened instanceof Error) throw opened
          const held = opened as TestSocket
          const code = await Promise.race([
            held.closed.then((closed) => closed.code),
            new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 10_000))
          ])
          held.close()
          return {
            closed: code !== undefined,
            code,
            hello: held.frames.some((frame) => frame.type === "hello"),
            revoked: held.frames.some((frame) => frame.type === "revoked")
          }
        })
      )
      for (const outcome of outcomes) {
        expect(outcome, JSON.stringify(outcome)).toMatchObject({ closed: true })
        // A socket that said hello before the ending committed is then revoked, never left open.
        if (outcome.hello) expect(outcome, JSON.stringify(outcome)).toMatchObject({ code: 4001, revoked: true })
      }
    },
    120_000
  )

  it("answers /metrics on the socket port only to a bearer of METRICS_TOKEN (S52)", async () => {
    const url = b.wsUrl.replace("ws://", "http://").replace("/ws", "/metrics")
    expect((await fetch(url)).status).toBe(401)
    expect((await fetch(url, { headers: { authorization: "Bearer wrong" } })).status).toBe(401)
    const allowed = await fetch(url, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })
    expect(allowed.status).toBe(200)
    expect(await allowed.text()).toMatch(/^live_sessions \d+$/m)
  })

  it("refuses an upgrade carrying two Origin headers, whichever comes first", async () => {
    const member = await newMember("open-origins")
    const { port, hostname } = new URL(b.wsUrl.replace("ws://", "http://"))
    const upgrade = (ticket: string, origins: ReadonlyArray<string>) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(Number(port), hostname, () => {
          socket.write(
            [
              `GET /ws?ticket=${ticket} HTTP/1.1`,
              `Host: ${hostname}:${port}`,
              "Upgrade: websocket",
              "Connection: Upgrade",
              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
              "Sec-WebSocket-Version: 13",
              ...origins.map((origin) => `Origin: ${origin}`),
              "",
              ""
            ].join("\r\n")
          )
        })
        let head = ""
        socket.on("data", (chunk) => {
          head += chunk.toString("latin1")
          if (head.includes("\r\n")) {
            socket.destroy()
            resolve(head.slice(0, head.indexOf("\r\n")))
          }
        })
        socket.on("error", reject)
      })
    expect(await upgrade((await org.ticket(member)).ticket, [ORIGIN, "https://evil.example.com"])).toMatch(/ 403 /)
    expect(await upgrade((await org.ticket(member)).ticket, [ORIGIN, ORIGIN])).toMatch(/ 403 /)
    expect(await upgrade((await org.ticket(member)).ticket, [ORIGIN])).toMatch(/ 101 /)
  })

  it("still opens, with hello, for a live session (the endings above are what refuse)", async () => {
    const member = await newMember("open-live")
    const socket = await openSocket(`${b.wsUrl}?ticket=${(await org.ticket(member)).ticket}`, { origin: ORIGIN })
    expect(await socket.next("hello")).toMatchObject({ userId: member.userId, organizationId: org.organizationId })
    socket.close()
    // Signing in again after the endings works as before.
    expect((await api.login(member.email, STRONG_PASSWORD)).status).toBe(200)
  })
})
