/**
 * What a `POST /rpc` message may say about its request (S48): the client address, user agent and
 * request id come from the HTTP request (and the TRUST_PROXY rule) only, whatever a message's own
 * `headers` claim; one POST carries a bounded number of messages; and every per-IP and per-account
 * limit applies to each message. Raw NDJSON lines, as an attacker sends them, and the typed client.
 */
import { RpcClient } from "@effect/rpc"
import { Effect, Either, Redacted } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { MAX_RPC_MESSAGES } from "../../src/layers/http/RpcTransport.ts"
import { ApiClient } from "../../src/rpc/client.ts"
import { STRONG_PASSWORD, uniqueEmail } from "../support/AuthClient.ts"
import { e2e } from "../support/E2e.ts"
import type { ServerProcess } from "../support/ServerProcess.ts"
import { query } from "../support/TestDatabase.ts"
import { startTestNode, type TestNode } from "../support/TestNode.ts"

type Line = { readonly tag: string; readonly payload: unknown; readonly headers?: ReadonlyArray<[string, string]> }

/** One POST /rpc with these messages (one NDJSON line each); the status and each answer line. */
const postRpc = async (url: string, lines: ReadonlyArray<Line>, headers: Record<string, string> = {}) => {
  const body = lines
    .map((line, i) =>
      JSON.stringify({
        _tag: "Request",
        id: String(i + 1),
        tag: line.tag,
        payload: line.payload,
        headers: line.headers ?? []
      })
    )
    .join("\n")
  const response = await fetch(`${url}/rpc`, {
    method: "POST",
    headers: { "content-type": "application/ndjson", ...headers },
    body: `${body}\n`
  })
  const text = await response.text()
  return { status: response.status, text, answers: text.split("\n").filter((line) => line.includes('"Exit"')) }
}

const login = (email: string, password: string, headers: ReadonlyArray<[string, string]> = []): Line => ({
  tag: "auth.login",
  payload: { email, password },
  headers
})

const count = (answers: ReadonlyArray<string>, fragment: string) => answers.filter((a) => a.includes(fragment)).length

/** Headers an attacker puts in a message to pass for someone else. */
const forged = (i: number): Array<[string, string]> => [
  ["x-client-ip", `203.0.113.${i}`],
  ["x-forwarded-for", `203.0.113.${i}`],
  ["user-agent", `forged-agent/${i}`],
  ["x-request-id", `forged-request-${i}`]
]

// No trusted proxy, 5 sign-in requests a minute per client address.
describe("RPC message headers do not move the per-IP limit (S48)", () => {
  let node: TestNode
  let server: ServerProcess

  beforeAll(async () => {
    node = await startTestNode({ AUTH_IP_RATE_LIMIT: "5" })
    server = node.server
  }, 90_000)
  afterAll(() => node?.stop())

  it("logins that each claim another x-client-ip in their message meet the limit of the real address (S48)", async () => {
    const answers: Array<string> = []
    for (let i = 0; i < 8; i++) {
      const reply = await postRpc(server.url, [login(uniqueEmail("forged-ip"), "not the password", forged(i))])
      expect(reply.status).toBe(200)
      answers.push(...reply.answers)
    }
    expect(answers).toHaveLength(8)
    expect(count(answers.slice(0, 5), '"invalid_credentials"')).toBe(5)
    expect(count(answers.slice(5), '"TooManyRequests"')).toBe(3)
  })
})

describe("RPC messages and what the server derives from the transport (S48)", () => {
  const { server, api, database } = e2e()

  const auditOf = (email: string, action: string) =>
    query(
      database.url,
      "SELECT ip, user_agent, request_id FROM audit_log WHERE action = $1 AND actor_id = (SELECT id FROM users WHERE email = $2)",
      [action, email]
    )

  it("audits the transport's address, user agent and request id, not the ones a message claims (S48)", async () => {
    const email = uniqueEmail("audit-forged")
    expect((await api.register(email, STRONG_PASSWORD)).status).toBe(202)
    // One trusted proxy hop: X-Forwarded-For's last entry is the client.
    const reply = await postRpc(server.url, [login(email, STRONG_PASSWORD, forged(1))], {
      "x-forwarded-for": "192.0.2.44",
      "user-agent": "real-agent/1.0",
      "x-request-id": "real-request-1"
    })
    expect(count(reply.answers, '"accessToken"')).toBe(1)
    expect(await auditOf(email, "login.succeeded")).toEqual([
      { ip: "192.0.2.44", user_agent: "real-agent/1.0", request_id: "real-request-1" }
    ])
  })

  it("the typed client's extra headers do not set them either (S48)", async () => {
    const email = uniqueEmail("typed-forged")
    expect((await api.register(email, STRONG_PASSWORD)).status).toBe(202)
    const result = await Effect.gen(function* () {
      const client = yield* ApiClient
      return yield* client.auth
        .login({ email, password: Redacted.make(STRONG_PASSWORD) })
        .pipe(RpcClient.withHeaders(Object.fromEntries(forged(2))))
    }).pipe(Effect.provide(ApiClient.layer(`${server.url}/rpc`)), Effect.either, Effect.runPromise)
    expect(Either.isRight(result)).toBe(true)
    const [row] = await auditOf(email, "login.succeeded")
    expect(row?.ip).toMatch(/^(127\.0\.0\.1|::1)$/)
    expect(row?.user_agent).not.toBe("forged-agent/2")
    expect(row?.request_id).not.toBe("forged-request-2")
  })

  it(`one POST carries at most ${MAX_RPC_MESSAGES} messages; more answer 413 naming the limit (S48)`, async () => {
    const jwks = (n: number) => Array.from({ length: n }, () => ({ tag: "auth.jwks", payload: {} }))
    const full = await postRpc(server.url, jwks(MAX_RPC_MESSAGES))
    expect(full.status).toBe(200)
    expect(count(full.answers, '"Success"')).toBe(MAX_RPC_MESSAGES)

    const over = await postRpc(server.url, [
      ...jwks(MAX_RPC_MESSAGES),
      ...Array.from({ length: 2_000 - MAX_RPC_MESSAGES }, () => ({ tag: "authz.check", payload: {} }))
    ])
    expect(over.status).toBe(413)
    expect(JSON.parse(over.text)).toMatchObject({
      _tag: "PayloadTooLarge",
      code: "payload_too_large",
      message: expect.stringContaining(`at most ${MAX_RPC_MESSAGES} messages`)
    })
  })

  it("the per-account lock holds for the messages of one POST: of 20 wrong passwords, 5 are checked (S48)", async () => {
    const email = uniqueEmail("batch-lock")
    expect((await api.register(email, STRONG_PASSWORD)).status).toBe(202)
    const reply = await postRpc(
      server.url,
      Array.from({ length: 20 }, (_, i) => login(email, `wrong password ${i}`))
    )
    expect(reply.answers).toHaveLength(20)
    expect(count(reply.answers, '"invalid_credentials"')).toBe(5)
    expect(count(reply.answers, '"TooManyRequests"')).toBe(15)
    const failures = await auditOf(email, "login.failed")
    expect(failures).toHaveLength(5)
  })
})
