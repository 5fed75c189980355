/**
 * A platform administrator restores an organization's owner (S45): through HTTP, the RPC client
 * and `yarn admin restore-owner`, audited, idempotent, for platform administrators only.
 */
import { spawn } from "node:child_process"
import { createRequire } from "node:module"
import { fileURLToPath, pathToFileURL } from "node:url"
import { Effect, Either } from "effect"
import { beforeAll, describe, expect, it } from "vitest"
import { ApiClient } from "../../src/rpc/client.ts"
import { e2e, eventually } from "../support/E2e.ts"
import type { User } from "../support/Tenant.ts"
import { query } from "../support/TestDatabase.ts"

const root = fileURLToPath(new URL("../../", import.meta.url))
const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href
const cli = fileURLToPath(new URL("../../src/admin.ts", import.meta.url))

/** Runs `yarn admin …` (src/admin.ts through tsx, as the script does) with only the given environment. */
const runCli = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ["--import", tsx, cli, ...args], { cwd: root, env, stdio: "pipe" })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk) => {
      stdout += chunk
    })
    child.stderr.on("data", (chunk) => {
      stderr += chunk
    })
    child.once("exit", (code) => resolve({ code, stdout, stderr }))
  })

interface Restored {
  organizationId: string
  userId: string
  changed: boolean
  removedAssignments: number
  revision: string
}

describe("restoring an organization's owner (S45)", () => {
  const { node, database, api, rpc, signUp, createOrganization } = e2e()
  let admin: User

  beforeAll(async () => {
    admin = await signUp("restore-admin")
    await query(database.url, "UPDATE users SET is_platform_admin = true WHERE id = $1", [admin.userId])
  }, 60_000)

  /** What no API call can do any more (S44): a role denying everything on the owner, as a pre-fix lockout left it. */
  const lockOut = async (organizationId: string, userId: string) => {
    const [role] = await query(
      database.url,
      "INSERT INTO roles (organization_id, name, description) VALUES ($1, 'Lockout', '') RETURNING id::text AS id",
      [organizationId]
    )
    await query(
      database.url,
      "INSERT INTO role_grants (organization_id, role_id, permission, effect) VALUES ($1, $2, '*', 'deny')",
      [organizationId, role!.id]
    )
    await query(database.url, "INSERT INTO assignments (organization_id, user_id, role_id) VALUES ($1, $2, $3)", [
      organizationId,
      userId,
      role!.id
    ])
    await query(database.url, "UPDATE organizations SET revision = revision + 1 WHERE id = $1", [organizationId])
  }

  const readsOrg = async (user: User, organizationId: string, status: number) =>
    (
      await eventually(
        () => api.call("GET", `/v1/orgs/${organizationId}`, { token: user.token }),
        (r) => r.status === status
      )
    ).status

  const restored = (organizationId: string) =>
    query(
      database.url,
      "SELECT actor_id::text AS actor_id, target, revision::text AS revision FROM audit_log WHERE organization_id = $1 AND action = 'organization.owner_restored' ORDER BY id",
      [organizationId]
    )

  it("gives a locked-out owner their organization back over HTTP, audited, once; 403 to anyone else", async () => {
    const owner = await signUp("restore-owner")
    const organizationId = await createOrganization(owner, "restore")
    await lockOut(organizationId, owner.userId)
    expect(await readsOrg(owner, organizationId, 403)).toBe(403)

    const path = `/v1/admin/orgs/${organizationId}/owners/${owner.userId}`
    expect((await api.call("POST", path, { token: owner.token })).status).toBe(403)
    const first = await api.call<Restored>("POST", path, { token: admin.token })
    expect(first.status).toBe(200)
    expect(first.body).toMatchObject({ organizationId, userId: owner.userId, changed: true, removedAssignments: 1 })
    expect(await readsOrg(owner, organizationId, 200)).toBe(200)
    expect((await api.call("GET", `/v1/orgs/${organizationId}/roles`, { token: owner.token })).status).toBe(200)

    const again = await api.call<Restored>("POST", path, { token: admin.token })
    expect(again.body).toMatchObject({ changed: false, removedAssignments: 0, revision: first.body.revision })
    expect(await restored(organizationId)).toEqual([
      { actor_id: admin.userId, target: `user:${owner.userId}`, revision: first.body.revision }
    ])
  }, 60_000)

  it("makes someone else the owner through the RPC client, and answers NotFound for an unknown organization or user", async () => {
    const owner = await signUp("restore-rpc-owner")
    const heir = await signUp("restore-rpc-heir")
    const organizationId = await createOrganization(owner, "restore-rpc")
    expect((await api.call("GET", `/v1/orgs/${organizationId}`, { token: heir.token })).status).toBe(404)
    const run = <A, E>(token: string, f: (c: ApiClient["Type"]) => Effect.Effect<A, E>) =>
      rpc(token)(Effect.either(Effect.flatMap(ApiClient, f)))

    const refused = await run(owner.token, (c) => c.admin.restoreOwner({ organizationId, userId: heir.userId }))
    expect(Either.isLeft(refused) && refused.left).toMatchObject({ _tag: "Forbidden" })
    const made = await run(admin.token, (c) => c.admin.restoreOwner({ organizationId, userId: heir.userId }))
    expect(Either.isRight(made) && made.right).toMatchObject({ changed: true, removedAssignments: 0 })
    expect(await readsOrg(heir, organizationId, 200)).toBe(200)
    const members = await api.call<Array<{ userId: string; roles: Array<{ name: string }> }>>(
      "GET",
      `/v1/orgs/${organizationId}/members`,
      { token: heir.token }
    )
    expect(members.body.find((m) => m.userId === heir.userId)?.roles.map((r) => r.name)).toEqual(["owner"])

    const unknownOrg = await run(admin.token, (c) =>
      c.admin.restoreOwner({ organizationId: "00000000-0000-4000-8000-000000000000", userId: heir.userId })
    )
    expect(Either.isLeft(unknownOrg) && unknownOrg.left).toMatchObject({ _tag: "NotFound" })
    const unknownUser = await run(admin.token, (c) =>
      c.admin.restoreOwner({ organizationId, userId: "00000000-0000-4000-8000-000000000000" })
    )
    expect(Either.isLeft(unknownUser) && unknownUser.left).toMatchObject({ _tag: "NotFound" })
  }, 60_000)

  it("restores an owner with `yarn admin restore-owner`, audited without an actor", async () => {
    const owner = await signUp("restore-cli-owner")
    const organizationId = await createOrganization(owner, "restore-cli")
    await lockOut(organizationId, owner.userId)
    expect(await readsOrg(owner, organizationId, 403)).toBe(403)

    const done = await runCli(["restore-owner", organizationId, owner.email.toUpperCase()], node.env)
    expect(done.stderr).toBe("")
    expect(done.code).toBe(0)
    expect(done.stdout).toMatch(
      new RegExp(
        `^${owner.email.replace(/[.+]/g, "\\$&")} is an owner of ${organizationId} again \\(revision \\d+, 1 deny-carrying assignment\\(s\\) taken away\\)\\n$`
      )
    )
    expect(await readsOrg(owner, organizationId, 200)).toBe(200)
    expect((await restored(organizationId)).map((row) => row.actor_id)).toEqual([null])

    const unknown = await runCli(["restore-owner", organizationId, "nobody@example.com"], node.env)
    expect(unknown).toMatchObject({ code: 1, stderr: "admin: no user with the email nobody@example.com\n" })
  }, 90_000)
})
