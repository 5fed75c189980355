import { setTimeout as sleep } from "node:timers/promises"
import { Effect, Either } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { ApiClient } from "../../src/rpc/client.ts"
import { e2e, eventually } from "../support/E2e.ts"
import { query } from "../support/TestDatabase.ts"

/**
 * S34 and R5: while the node cannot reach its database, checks deny (503, never a stale allow)
 * and writes fail whole, each with 503 `unavailable` wherever the database went away; when the
 * database is back, the same process answers again.
 */
describe("losing Postgres while deciding", () => {
  const { node, api, rpc, signUp, createOrganization } = e2e()
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

  it("answers writes whose connection the database cuts mid-flight 503 unavailable, never 500, on both doors (issue 12 item 10, S34, R5)", async () => {
    const owner = await signUp("pgcut")
    const organizationId = await createOrganization(owner, "cut")
    const asOwner = rpc(owner.token)
    // What `pg_ctl restart -m fast` does to open connections (SQLSTATE 57P01, "terminating
    // connection due to administrator command"), to this node's database only, again and again,
    // while new connections stay allowed: guards pass and writes are cut in flight.
    let cutting = true
    const cutter = (async () => {
      while (cutting) {
        await query(
          adminUrl,
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
          [databaseName]
        ).catch(() => undefined)
        await sleep(5 + Math.random() * 30)
      }
    })()
    const answers: Array<string> = []
    let written = 0
    const write = async (door: "http" | "rpc", kind: "roles" | "permissions") => {
      // Each write's own number, taken now: the RPC call below builds its payload only when it runs.
      const n = ++written
      if (door === "http") {
        const body = kind === "roles" ? { name: `cut-role-${n}` } : { key: `cut.p${n}:read` }
        const reply = await api.call<{ code?: string }>("POST", `/v1/orgs/${organizationId}/${kind}`, {
          token: owner.token,
          body
        })
        answers.push(reply.status < 300 ? "ok" : `http ${reply.status} ${reply.body.code}`)
        return
      }
      const call = Effect.flatMap(ApiClient, (client) =>
        kind === "roles"
          ? Effect.asVoid(client.roles.create({ organizationId, name: `cut-role-${n}` }))
          : Effect.asVoid(client.permissions.create({ organizationId, key: `cut.p${n}:read` }))
      )
      const result = await asOwner(Effect.either(call)).catch((defect) =>
        Either.left({ _tag: `defect ${String(defect)}` })
      )
      answers.push(Either.isRight(result) ? "ok" : `rpc ${result.left._tag}`)
    }
    const deadline = Date.now() + 8_000
    try {
      while (Date.now() < deadline) {
        await Promise.all([
          write("http", "roles"),
          write("rpc", "roles"),
          write("http", "permissions"),
          write("rpc", "permissions"),
          write("http", "roles"),
          write("rpc", "roles")
        ])
      }
    } finally {
      cutting = false
      await cutter
    }
    const failed = answers.filter((answer) => answer !== "ok")
    // The cuts were felt, and every write they failed said so the same way: 503 `unavailable`.
    expect(failed.length).toBeGreaterThan(0)
    expect(failed.filter((answer) => answer !== "http 503 unavailable" && answer !== "rpc ServiceUnavailable")).toEqual(
      []
    )
  }, 60_000)
})
