import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest"
import { rest, STRONG_PASSWORD, uniqueEmail } from "../support/AuthClient.ts"
import { type ServerProcess, startServer } from "../support/ServerProcess.ts"
import { createTestDatabase, query, type TestDatabase, testRedisPrefix } from "../support/TestDatabase.ts"

// A node that trusts no proxy and allows 5 sign-in requests a minute per client address.
describe("per-IP limits on sign-in endpoints, with no trusted proxy", () => {
  let database: TestDatabase
  let dataDir: string
  let server: ServerProcess

  beforeAll(async () => {
    database = await createTestDatabase()
    dataDir = mkdtempSync(join(tmpdir(), "lps-limits-"))
    server = await startServer({
      DATABASE_URL: database.url,
      REDIS_URL: inject("redisUrl"),
      REDIS_KEY_PREFIX: testRedisPrefix(),
      DATA_DIR: dataDir,
      AUTH_IP_RATE_LIMIT: "5",
      ADMIN_EMAIL: "root@example.com",
      ADMIN_PASSWORD: "a long admin passphrase"
    })
  }, 60_000)

  afterAll(async () => {
    await server?.stop()
    await database?.drop()
    rmSync(dataDir, { recursive: true, force: true })
  })

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
  let database: TestDatabase
  let dataDir: string
  let server: ServerProcess

  beforeAll(async () => {
    database = await createTestDatabase()
    dataDir = mkdtempSync(join(tmpdir(), "lps-mass-"))
    server = await startServer({
      DATABASE_URL: database.url,
      REDIS_URL: inject("redisUrl"),
      REDIS_KEY_PREFIX: testRedisPrefix(),
      DATA_DIR: dataDir,
      TRUST_PROXY: "1",
      AUTH_IP_RATE_LIMIT: "1000"
    })
  }, 60_000)

  afterAll(async () => {
    await server?.stop()
    await database?.drop()
    rmSync(dataDir, { recursive: true, force: true })
  })

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
