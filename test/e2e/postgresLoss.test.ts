import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { e2e, eventually } from "../support/E2e.ts"
import { query } from "../support/TestDatabase.ts"

/**
 * S34 and R5: while the node cannot reach its database, checks deny (503, never a stale allow)
 * and writes fail whole; when the database is back, the same process answers again.
 */
describe("losing Postgres while deciding", () => {
  const { node, api, signUp, createOrganization } = e2e()
  let adminUrl: string
  let databaseName: string

  beforeAll(() => {
    const url = new URL(node.database.url)
    databaseName = url.pathname.slice(1)
    url.pathname = "/postgres"
    adminUrl = url.href
  })

  afterAll(async () => {
    await query(adminUrl, `ALTER DATABASE "${databaseName}" ALLOW_CONNECTIONS true`).catch(() => undefined)
  })

  /** Refuses new connections to the node's database and cuts the open ones: Postgres is gone for it. */
  const cutDatabase = async () => {
    await query(adminUrl, `ALTER DATABASE "${databaseName}" ALLOW_CONNECTIONS false`)
    await query(adminUrl, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", [databaseName])
  }

  it("denies checks with 503 while the database is unreachable, and recovers without a restart", async () => {
    const owner = await signUp("pgloss")
    const accessToken = owner.token
    const organizationId = await createOrganization(owner, "outage")
    const checkPath = `/v1/orgs/${organizationId}/check`
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
    const write = await api.call("POST", `/v1/orgs/${organizationId}/roles`, {
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
      (reply) => reply.status === 200,
      20_000
    )
    expect(after.body.allowed).toBe(true)
    // Nothing of the refused write was committed.
    const roles = await query(node.database.url, "SELECT name FROM roles WHERE organization_id = $1 AND name = $2", [
      organizationId,
      "during-outage"
    ])
    expect(roles).toEqual([])
  }, 60_000)
})
