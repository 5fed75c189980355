import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { rest, STRONG_PASSWORD, uniqueEmail } from "../support/AuthClient.ts"
import { BEHIND_PROXY } from "../support/E2e.ts"
import type { ServerProcess } from "../support/ServerProcess.ts"
import { query, type TestDatabase } from "../support/TestDatabase.ts"
import { startTestNode, type TestNode } from "../support/TestNode.ts"

// A node that trusts no proxy and allows 5 sign-in requests a minute per client address.
describe("per-IP limits on sign-in endpoints, with no trusted proxy", () => {
  let node: TestNode
  let database: TestDatabase
  let server: ServerProcess

  beforeAll(async () => {
    node = await startTestNode({
      AUTH_IP_RATE_LIMIT: "5",
      ADMIN_EMAIL: "root@example.com",
      ADMIN_PASSWORD: "a long admin passphrase"
    })
    ;({ database, server } = node)
  }, 60_000)

  afterAll(() => node?.stop())

  it("answers 429 with Retry-After past the limit, and a spoofed X-Forwarded-For does not get around it", async () => {
    const api = rest(server.url)
    const statuses: Array<number> = []
    for (let i = 0; i < 8; i++) {
      // Every request claims another client address; with TRUST_PROXY unset the header is ignored.
      const reply = await api.call("POST", "/v1/auth/password/forgot", {
        body: { email: uniqueEmail("limit") },
        ip: `198.51.100.${i}`
      })
      statuses.push(reply.status)
      if (reply.status === 429) {
        expect(Number(reply.headers.get("retry-after"))).toBeGreaterThan(0)
        expect(reply.body).toMatchObject({ _tag: "TooManyRequests", code: "too_many_requests" })
      }
    }
    expect(statuses.slice(0, 5)).toEqual([202, 202, 202, 202, 202])
    expect(statuses.slice(5)).toEqual([429, 429, 429])
  })

  it("creates the platform administrator from ADMIN_EMAIL and ADMIN_PASSWORD", async () => {
    const rows = await query(database.url, "SELECT email, is_platform_admin FROM users WHERE is_platform_admin")
    expect(rows).toEqual([{ email: "root@example.com", is_platform_admin: true }])
  })
})

describe("fields a client must not set", () => {
  let node: TestNode
  let database: TestDatabase
  let server: ServerProcess

  beforeAll(async () => {
    node = await startTestNode(BEHIND_PROXY)
    ;({ database, server } = node)
  }, 60_000)

  afterAll(() => node?.stop())

  it("ignores isPlatformAdmin, emailVerified and id in a registration, and __proto__ stays data", async () => {
    const api = rest(server.url)
    const email = uniqueEmail("mass")
    const reply = await api.call("POST", "/v1/auth/register", {
      body: {
        email,
        password: STRONG_PASSWORD,
        name: "Mallory",
        isPlatformAdmin: true,
        is_platform_admin: true,
        emailVerified: true,
        id: "00000000-0000-0000-0000-000000000001",
        ["__proto__"]: { isPlatformAdmin: true }
      }
    })
    expect(reply.status).toBe(202)
    const [row] = await query(
      database.url,
      "SELECT id, is_platform_admin, email_verified_at FROM users WHERE email = $1",
      [email]
    )
    expect(row).toMatchObject({ is_platform_admin: false, email_verified_at: null })
    expect(row?.id).not.toBe("00000000-0000-0000-0000-000000000001")
  })
})
