import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { rest, STRONG_PASSWORD, type TokenPairBody, uniqueEmail } from "../support/AuthClient.ts"
import { query } from "../support/TestDatabase.ts"
import { startTestNode, type TestNode } from "../support/TestNode.ts"

const eventually = async <A>(f: () => Promise<A>, done: (a: A) => boolean, timeoutMs = 20_000) => {
  const deadline = Date.now() + timeoutMs
  let last = await f()
  while (!done(last) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200))
    last = await f()
  }
  return last
}

/**
 * S34 and R5: while the node cannot reach its database, checks deny (503, never a stale allow)
 * and writes fail whole; when the database is back, the same process answers again.
 */
describe("losing Postgres while deciding", () => {
  let node: TestNode
  let api: ReturnType<typeof rest>
  let adminUrl: string
  let databaseName: string

  beforeAll(async () => {
    node = await startTestNode({ TRUST_PROXY: "1", AUTH_IP_RATE_LIMIT: "1000" })
    api = rest(node.server.url)
    const url = new URL(node.database.url)
    databaseName = url.pathname.slice(1)
    url.pathname = "/postgres"
    adminUrl = url.href
  }, 60_000)

  afterAll(async () => {
    await query(adminUrl, `ALTER DATABASE "${databaseName}" ALLOW_CONNECTIONS true`).catch(() => undefined)
    await node?.stop()
  })

  /** Refuses new connections to the node's database and cuts the open ones: Postgres is gone for it. */
  const cutDatabase = async () => {
    await query(adminUrl, `ALTER DATABASE "${databaseName}" ALLOW_CONNECTIONS false`)
    await query(adminUrl, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", [databaseName])
  }

  it("denies checks with 503 while the database is unreachable, and recovers without a restart", async () => {
    const email = uniqueEmail("pgloss")
    await api.register(email, STRONG_PASSWORD)
    const { accessToken } = (await api.login(email, STRONG_PASSWORD)).body as TokenPairBody
    const created = await api.call<{ id: string; revision: string }>("POST", "/v1/orgs", {
      token: accessToken,
      body: { name: "Outage", slug: `outage-${Date.now()}` }
    })
    const checkPath = `/v1/orgs/${created.body.id}/check`
    const allowed = await api.call<{ allowed: boolean }>("POST", checkPath, {
      token: accessToken,
      body: { permission: "org:delete" }
    })
    expect(allowed.body.allowed).toBe(true)

    await cutDatabase()
    const during = await api.call<{ code: string; message: string }>("POST", checkPath, {
      token: accessToken,
      body: { permission: "org:delete" }
    })
    expect(during.status).toBe(503)
    expect(during.body.code).toBe("unavailable")
    expect(JSON.stringify(during.body)).not.toMatch(/stack|at .*\.ts/)
    const write = await api.call("POST", `/v1/orgs/${created.body.id}/roles`, {
      token: accessToken,
      body: { name: "during-outage" }
    })
    expect(write.status).toBe(503)
    const ready = await fetch(`${node.server.url}/health/ready`)
    expect(ready.status).toBe(503)
    expect(node.server.output()).toContain("permissions: cannot decide; denying")

    await query(adminUrl, `ALTER DATABASE "${databaseName}" ALLOW_CONNECTIONS true`)
    const after = await eventually(
      () =>
        api.call<{ allowed: boolean }>("POST", checkPath, { token: accessToken, body: { permission: "org:delete" } }),
      (reply) => reply.status === 200
    )
    expect(after.body.allowed).toBe(true)
    // Nothing of the refused write was committed.
    const roles = await query(node.database.url, "SELECT name FROM roles WHERE organization_id = $1 AND name = $2", [
      created.body.id,
      "during-outage"
    ])
    expect(roles).toEqual([])
  }, 60_000)
})
