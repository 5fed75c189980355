import { spawn } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { DateTime, Effect, Either } from "effect"
import { beforeAll, describe, expect, it } from "vitest"
import { ApiClient } from "../../src/rpc/client.ts"
import { BadRequest, Conflict, Forbidden, NotFound, Unauthorized } from "../../src/rpc/Errors.ts"
import { freshIp, rest, type TokenPairBody, uniqueEmail } from "../support/AuthClient.ts"
import { e2e, openApi } from "../support/E2e.ts"
import { tokenIn, waitForMail } from "../support/Mailbox.ts"
import type { User } from "../support/Tenant.ts"
import { query } from "../support/TestDatabase.ts"

const root = fileURLToPath(new URL("../../", import.meta.url))
const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href
const cli = fileURLToPath(new URL("../../src/admin.ts", import.meta.url))

/** Runs `yarn admin …` (src/admin.ts through tsx, as the script does) with only the given environment. */
const runCli = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ["--import", tsx, cli, ...args], {
      cwd: root,
      env,
      stdio: ["ignore", "pipe", "pipe"]
    })
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

interface AdminOrg {
  id: string
  name: string
  slug: string
  status: string
  revision: string
  memberCount: number
  createdAt: string
}
interface AuditItem {
  id: string
  at: string
  actorId: string | null
  action: string
  target: string | null
  ip: string | null
  userAgent: string | null
  requestId: string | null
  revision: string | null
  data: Record<string, unknown>
}
interface Page<A> {
  items: Array<A>
  nextCursor?: string
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe("platform administration and the audit log, end to end on Postgres and Redis", () => {
  const { node, database, server, api, signUp, addMember, rpc: rpcAs } = e2e()
  let admin: User

  beforeAll(async () => {
    admin = await signUp("platform-admin")
    const granted = await runCli(["grant", admin.email], node.env)
    expect(granted).toMatchObject({ code: 0, stdout: `${admin.email} is now a platform administrator\n` })
  })

  const createOrg = async (token: string, slug: string) =>
    (
      await api.call<{ id: string; revision: string; name: string }>("POST", "/v1/orgs", {
        token,
        body: { name: `Org ${slug}`, slug }
      })
    ).body

  /** Calls `f` with an RPC client as the holder of `token`; its failure or success. */
  const rpc =
    (token?: string) =>
    <A, E>(f: (client: ApiClient["Type"]) => Effect.Effect<A, E>) =>
      rpcAs(token)(Effect.either(Effect.flatMap(ApiClient, f)))

  const auditPage = (token: string | undefined, organizationId: string, params = "") =>
    api.call<Page<AuditItem> & { code?: string; message?: string }>(
      "GET",
      `/v1/orgs/${organizationId}/audit${params === "" ? "" : `?${params}`}`,
      token === undefined ? {} : { token }
    )

  /** Every entry through `limit`-sized pages, following `nextCursor`. */
  const auditAll = async (token: string, organizationId: string, params: string, limit: number) => {
    const items: Array<AuditItem> = []
    let cursor: string | undefined
    let pages = 0
    do {
      const reply = await auditPage(
        token,
        organizationId,
        [params, `limit=${limit}`, cursor === undefined ? "" : `cursor=${cursor}`].filter((p) => p !== "").join("&")
      )
      expect(reply.status).toBe(200)
      expect(reply.body.items.length).toBeLessThanOrEqual(limit)
      items.push(...reply.body.items)
      cursor = reply.body.nextCursor
      pages += 1
    } while (cursor !== undefined && pages < 50)
    return { items, pages }
  }

  describe("the guard", () => {
    it("answers 403 to a signed-in non-administrator and 401 without a session, on every admin endpoint of both doors", async () => {
      const owner = await signUp("not-admin")
      const org = await createOrg(owner.token, `guarded-${Date.now()}`)
      const calls = [
        ["GET", "/v1/admin/orgs"],
        ["POST", `/v1/admin/orgs/${org.id}/freeze`],
        ["POST", `/v1/admin/orgs/${org.id}/unfreeze`],
        ["POST", `/v1/admin/users/${owner.userId}/disable`],
        ["POST", `/v1/admin/users/${owner.userId}/enable`]
      ] as const
      for (const [method, path] of calls) {
        const refused = await api.call(method, path, { token: owner.token })
        expect(refused.status, `${method} ${path}`).toBe(403)
        expect(refused.body).toMatchObject({ code: "forbidden" })
        expect((await api.call(method, path)).status, `${method} ${path} signed out`).toBe(401)
      }
      for (const token of [owner.token, undefined]) {
        const results: Array<Either.Either<unknown, unknown>> = [
          await rpc(token)((c) => c.admin.listOrganizations({})),
          await rpc(token)((c) => c.admin.freeze({ organizationId: org.id })),
          await rpc(token)((c) => c.admin.unfreeze({ organizationId: org.id })),
          await rpc(token)((c) => c.admin.disableUser({ userId: owner.userId })),
          await rpc(token)((c) => c.admin.enableUser({ userId: owner.userId }))
        ]
        for (const result of results) {
          expect(Either.isLeft(result) && result.left).toBeInstanceOf(token === undefined ? Unauthorized : Forbidden)
        }
      }
      // Nothing happened: the organization is active and its owner can still work in it.
      expect((await api.call("GET", `/v1/orgs/${org.id}`, { token: owner.token })).body).toMatchObject({
        status: "active",
        revision: "1"
      })
    })

    it("documents the platform-administrator requirement in the OpenAPI document", async () => {
      const spec = await openApi(server.url)
      expect(spec.paths["/v1/admin/orgs"]?.get?.["x-required-permission"]).toBe("platform-admin")
      expect(spec.paths["/v1/admin/users/{userId}/disable"]?.post?.["x-required-permission"]).toBe("platform-admin")
      expect(spec.paths["/v1/orgs/{organizationId}/audit"]?.get?.["x-required-permission"]).toBe("audit:read")
    })
  })

  describe("the admin command line", () => {
    it("grants and revokes platform administration, audited without an actor", async () => {
      const user = await signUp("cli-user")
      expect((await api.call("GET", "/v1/admin/orgs", { token: user.token })).status).toBe(403)
      const granted = await runCli(["grant", user.email.toUpperCase()], node.env)
      expect(granted.code).toBe(0)
      expect(granted.stdout).toBe(`${user.email} is now a platform administrator\n`)
      expect((await api.call("GET", "/v1/admin/orgs", { token: user.token })).status).toBe(200)
      const revoked = await runCli(["revoke", user.email], node.env)
      expect(revoked).toMatchObject({ code: 0, stdout: `${user.email} is no longer a platform administrator\n` })
      expect((await api.call("GET", "/v1/admin/orgs", { token: user.token })).status).toBe(403)
      // Platform-level entries belong to no organization, so no API lists them: read the table.
      const entries = await query(
        database.url,
        "SELECT action, actor_id, organization_id, data FROM audit_log WHERE target = $1 ORDER BY id",
        [`user:${user.userId}`]
      )
      expect(entries.filter((e) => String(e.action).startsWith("admin."))).toEqual([
        { action: "admin.granted", actor_id: null, organization_id: null, data: { email: user.email } },
        { action: "admin.revoked", actor_id: null, organization_id: null, data: { email: user.email } }
      ])
    }, 60_000)

    it("exits 1 with one line for an unknown email, and 2 with the usage for a wrong command", async () => {
      const unknown = await runCli(["grant", uniqueEmail("nobody")], node.env)
      expect(unknown.code).toBe(1)
      expect(unknown.stdout).toBe("")
      expect(unknown.stderr).toMatch(/^admin: no user with the email \S+\n$/)
      const wrong = await runCli(["promote", admin.email], node.env)
      expect(wrong.code).toBe(2)
      expect(wrong.stderr).toBe(
        "admin: usage: yarn admin grant|revoke <email> | yarn admin restore-owner <organization-id> <email>\n"
      )
      const noOrganization = await runCli(["restore-owner", "not-an-id", admin.email], node.env)
      expect(noOrganization.code).toBe(2)
    }, 60_000)

    it("says in one line that a running server holds the embedded database", async () => {
      const dataDir = mkdtempSync(join(tmpdir(), "lps-admin-cli-"))
      try {
        // The lock a running embedded server holds on DATA_DIR (this test process stands in for it).
        writeFileSync(join(dataDir, "pglite.lock"), String(process.pid))
        const { DATABASE_URL: _, ...embedded } = node.env
        const busy = await runCli(["grant", admin.email], { ...embedded, DATA_DIR: dataDir })
        expect(busy.code).toBe(1)
        expect(busy.stdout).toBe("")
        expect(busy.stderr.trim().split("\n")).toHaveLength(1)
        expect(busy.stderr).toContain(`is in use by process ${process.pid}`)
      } finally {
        rmSync(dataDir, { recursive: true, force: true })
      }
    }, 60_000)
  })

  describe("organizations", () => {
    it("lists every organization newest first with member counts, in pages without duplicates or gaps", async () => {
      const owner = await signUp("lister")
      const mine: Array<string> = []
      for (let i = 0; i < 5; i++) mine.push((await createOrg(owner.token, `listed-${i}-${Date.now()}`)).id)
      const member = await signUp("lister-member")
      await addMember(mine[0]!, member.userId, "viewer")

      const everything = await api.call<Page<AdminOrg>>("GET", "/v1/admin/orgs?limit=200", { token: admin.token })
      expect(everything.status).toBe(200)
      expect(everything.body.nextCursor).toBeUndefined()
      const all = everything.body.items
      expect(all.map((o) => o.id)).toEqual(expect.arrayContaining(mine))
      const created = all.map((o) => Date.parse(o.createdAt))
      expect(created).toEqual([...created].sort((a, b) => b - a))
      expect(all.find((o) => o.id === mine[0])).toMatchObject({ memberCount: 2, status: "active", revision: "1" })
      expect(all.find((o) => o.id === mine[1])).toMatchObject({ memberCount: 1 })
      // The newest is first.
      expect(all[0]?.id).toBe(mine[4])

      const paged: Array<AdminOrg> = []
      let cursor: string | undefined
      do {
        const reply = await api.call<Page<AdminOrg>>(
          "GET",
          `/v1/admin/orgs?limit=2${cursor === undefined ? "" : `&cursor=${cursor}`}`,
          { token: admin.token }
        )
        expect(reply.status).toBe(200)
        expect(reply.body.items.length).toBeLessThanOrEqual(2)
        paged.push(...reply.body.items)
        cursor = reply.body.nextCursor
      } while (cursor !== undefined)
      expect(paged.map((o) => o.id)).toEqual(all.map((o) => o.id))

      const defaults = await api.call<Page<AdminOrg>>("GET", "/v1/admin/orgs", { token: admin.token })
      expect(defaults.body.items.length).toBe(Math.min(all.length, 50))

      const viaRpc = await rpc(admin.token)((c) => c.admin.listOrganizations({ limit: 2 }))
      expect(Either.isRight(viaRpc) && viaRpc.right.items.map((o) => o.id)).toEqual(all.slice(0, 2).map((o) => o.id))
      const next = Either.isRight(viaRpc) ? viaRpc.right.nextCursor : undefined
      const second = await rpc(admin.token)((c) => c.admin.listOrganizations({ limit: 2, cursor: next }))
      expect(Either.isRight(second) && second.right.items.map((o) => o.id)).toEqual(all.slice(2, 4).map((o) => o.id))
    })

    it("refuses a bad limit, status or cursor with 400 on both doors", async () => {
      for (const params of [
        "limit=0",
        "limit=201",
        "limit=abc",
        "status=deleted",
        "cursor=garbage!",
        "cursor=bm90LWEtcG9zaXRpb24",
        `cursor=${Buffer.from("123").toString("base64url")}`,
        `cursor=${Buffer.from(`9999999999999999999.${crypto.randomUUID()}`).toString("base64url")}`
      ]) {
        const reply = await api.call("GET", `/v1/admin/orgs?${params}`, { token: admin.token })
        expect(reply.status, params).toBe(400)
        expect(reply.body).toMatchObject({ code: "invalid_payload" })
      }
      const forged = await rpc(admin.token)((c) => c.admin.listOrganizations({ cursor: "bm90LWEtcG9zaXRpb24" }))
      expect(Either.isLeft(forged) && forged.left).toBeInstanceOf(BadRequest)
    })

    it("freezes an organization: its members are denied everything at once, the revision moves, unfreeze restores", async () => {
      const owner = await signUp("freeze-owner")
      const member = await signUp("freeze-member")
      const org = await createOrg(owner.token, `freeze-${Date.now()}`)
      await addMember(org.id, member.userId, "admin")
      const before = await api.call<{ revision: string }>("GET", `/v1/orgs/${org.id}`, { token: owner.token })
      expect(before.status).toBe(200)
      const revision = BigInt(before.body.revision)

      const frozen = await api.call<{ organization: AdminOrg; revision: string }>(
        "POST",
        `/v1/admin/orgs/${org.id}/freeze`,
        { token: admin.token, body: { status: "active" } }
      )
      expect(frozen.status).toBe(200)
      expect(frozen.body.revision).toBe(String(revision + 1n))
      expect(frozen.headers.get("x-permission-revision")).toBe(String(revision + 1n))
      expect(frozen.body.organization).toMatchObject({
        id: org.id,
        status: "frozen",
        revision: String(revision + 1n),
        memberCount: 2
      })

      for (const who of [owner, member]) {
        for (const [method, path, body] of [
          ["GET", `/v1/orgs/${org.id}`, undefined],
          ["PATCH", `/v1/orgs/${org.id}`, { name: "While frozen" }],
          ["DELETE", `/v1/orgs/${org.id}`, undefined],
          ["GET", `/v1/orgs/${org.id}/audit`, undefined]
        ] as const) {
          const reply = await api.call(method, path, { token: who.token, ...(body ? { body } : {}) })
          expect(reply.status, `${method} ${path}`).toBe(403)
          expect(String(reply.body.message)).toContain("frozen")
        }
      }
      const viaRpc = await rpc(owner.token)((c) => c.orgs.get({ organizationId: org.id }))
      expect(Either.isLeft(viaRpc) && viaRpc.left).toBeInstanceOf(Forbidden)

      // Freezing a frozen organization changes nothing: same revision, no new event.
      const again = await api.call<{ revision: string }>("POST", `/v1/admin/orgs/${org.id}/freeze`, {
        token: admin.token
      })
      expect(again.status).toBe(200)
      expect(again.body.revision).toBe(String(revision + 1n))
      const listed = await api.call<Page<AdminOrg>>("GET", "/v1/admin/orgs?status=frozen&limit=200", {
        token: admin.token
      })
      expect(listed.body.items.map((o) => o.id)).toContain(org.id)
      expect(listed.body.items.every((o) => o.status === "frozen")).toBe(true)

      const unfrozen = await rpc(admin.token)((c) => c.admin.unfreeze({ organizationId: org.id }))
      expect(Either.isRight(unfrozen) && unfrozen.right.revision).toBe(String(revision + 2n))
      expect(Either.isRight(unfrozen) && unfrozen.right.organization.status).toBe("active")
      const after = await api.call("GET", `/v1/orgs/${org.id}`, { token: member.token })
      expect(after.status).toBe(200)
      expect(after.body).toMatchObject({ status: "active", revision: String(revision + 2n) })
      expect((await api.call("GET", `/v1/orgs/${org.id}`, { token: owner.token })).status).toBe(200)

      const outbox = await query(
        database.url,
        "SELECT revision::text, event_type, payload FROM outbox WHERE organization_id = $1 AND revision > $2 ORDER BY id",
        [org.id, String(revision)]
      )
      expect(outbox).toEqual([
        { revision: String(revision + 1n), event_type: "organization.frozen", payload: { organizationId: org.id } },
        { revision: String(revision + 2n), event_type: "organization.unfrozen", payload: { organizationId: org.id } }
      ])
    })

    it("answers 404 for an unknown organization on both doors", async () => {
      const missing = crypto.randomUUID()
      for (const action of ["freeze", "unfreeze"]) {
        const reply = await api.call("POST", `/v1/admin/orgs/${missing}/${action}`, { token: admin.token })
        expect(reply.status).toBe(404)
        expect(reply.body).toMatchObject({ code: "not_found" })
      }
      const viaRpc = await rpc(admin.token)((c) => c.admin.freeze({ organizationId: missing }))
      expect(Either.isLeft(viaRpc) && viaRpc.left).toBeInstanceOf(NotFound)
    })
  })

  describe("users", () => {
    it("disabling a user ends every session at once on every node; refresh and login fail; enabling lets them in again", async () => {
      const password = "disable me at once please"
      const victim = await signUp("victim", password)
      const other = (await api.login(victim.email, password)).body as TokenPairBody
      const nodeB = rest((await node.another()).url)
      expect((await api.me(victim.token)).status).toBe(200)
      expect((await nodeB.me(other.accessToken)).status).toBe(200)

      const disabled = await api.call("POST", `/v1/admin/users/${victim.userId}/disable`, { token: admin.token })
      expect(disabled.status).toBe(200)
      expect(disabled.body).toEqual({ userId: victim.userId, disabled: true })

      expect((await api.me(victim.token)).status).toBe(401)
      expect((await nodeB.me(victim.token)).status).toBe(401)
      expect((await nodeB.me(other.accessToken)).status).toBe(401)
      expect((await api.me(other.accessToken)).status).toBe(401)
      expect((await api.refresh(victim.tokens.refreshToken)).status).toBe(401)
      expect((await nodeB.refresh(other.refreshToken)).status).toBe(401)
      const login = await api.login(victim.email, password)
      const wrong = await api.login(uniqueEmail("no-such-user"), password)
      expect(login.status).toBe(401)
      expect(login.body).toEqual(wrong.body)

      // Idempotent.
      expect((await api.call("POST", `/v1/admin/users/${victim.userId}/disable`, { token: admin.token })).body).toEqual(
        { userId: victim.userId, disabled: true }
      )

      const enabled = await rpc(admin.token)((c) => c.admin.enableUser({ userId: victim.userId }))
      expect(Either.isRight(enabled) && enabled.right).toMatchObject({ userId: victim.userId, disabled: false })
      const back = await api.login(victim.email, password)
      expect(back.status).toBe(200)
      expect((await api.me(back.body.accessToken)).status).toBe(200)
      // Sessions ended by the disable stay ended.
      expect((await api.me(victim.token)).status).toBe(401)
      expect((await api.refresh(victim.tokens.refreshToken)).status).toBe(401)

      // User-level events have no organization, so no API lists them: read the outbox.
      const events = await query(
        database.url,
        "SELECT event_type, payload FROM outbox WHERE organization_id IS NULL AND payload->>'userId' = $1 ORDER BY id",
        [victim.userId]
      )
      expect(events.map((e) => e.event_type)).toEqual(["user.disabled", "sessions.revoked", "user.enabled"])
      expect(events[1]?.payload).toMatchObject({ reason: "user_disabled" })
      const revoked = events[1]?.payload as { sessionIds?: Array<string> } | undefined
      expect([...(revoked?.sessionIds ?? [])].sort()).toEqual([victim.tokens.sessionId, other.sessionId].sort())
      const audited = await query(
        database.url,
        "SELECT action, actor_id, data FROM audit_log WHERE target = $1 AND action LIKE 'user.%abled' ORDER BY id",
        [`user:${victim.userId}`]
      )
      expect(audited).toEqual([
        {
          action: "user.disabled",
          actor_id: admin.userId,
          data: { before: { disabled: false }, after: { disabled: true }, sessionsEnded: 2 }
        },
        {
          action: "user.enabled",
          actor_id: admin.userId,
          data: { before: { disabled: true }, after: { disabled: false } }
        }
      ])
    }, 90_000)

    it("refuses to disable yourself (409) and answers 404 for an unknown user, on both doors", async () => {
      const self = await api.call("POST", `/v1/admin/users/${admin.userId}/disable`, { token: admin.token })
      expect(self.status).toBe(409)
      expect(self.body).toMatchObject({ code: "cannot_disable_self" })
      const selfRpc = await rpc(admin.token)((c) => c.admin.disableUser({ userId: admin.userId }))
      expect(Either.isLeft(selfRpc) && selfRpc.left).toBeInstanceOf(Conflict)
      expect(Either.isLeft(selfRpc) && (selfRpc.left as Conflict).code).toBe("cannot_disable_self")
      const missing = crypto.randomUUID()
      for (const action of ["disable", "enable"]) {
        expect((await api.call("POST", `/v1/admin/users/${missing}/${action}`, { token: admin.token })).status).toBe(
          404
        )
      }
      expect((await api.call("POST", "/v1/admin/users/not-a-uuid/disable", { token: admin.token })).status).toBe(400)
      const missingRpc = await rpc(admin.token)((c) => c.admin.enableUser({ userId: missing }))
      expect(Either.isLeft(missingRpc) && missingRpc.left).toBeInstanceOf(NotFound)
      expect((await api.me(admin.token)).status).toBe(200)
    })
  })

  describe("the audit log API", () => {
    it("lists an organization's entries newest first, with every filter, in pages without duplicates or gaps", async () => {
      const owner = await signUp("audited")
      const org = await createOrg(owner.token, `audited-${Date.now()}`)
      for (let i = 1; i <= 7; i++) {
        await sleep(3)
        await api.call("PATCH", `/v1/orgs/${org.id}`, { token: owner.token, body: { name: `Renamed ${i}` } })
      }
      const ip = freshIp()
      const freeze = await api.call("POST", `/v1/admin/orgs/${org.id}/freeze`, {
        token: admin.token,
        ip,
        headers: { "user-agent": "admin-console/1.0", "x-request-id": "freeze-request-1" }
      })
      expect(freeze.status).toBe(200)
      await sleep(3)
      await api.call("POST", `/v1/admin/orgs/${org.id}/unfreeze`, { token: admin.token })

      const full = await auditPage(owner.token, org.id, "limit=200")
      expect(full.status).toBe(200)
      const entries = full.body.items
      expect(entries.slice(0, 9).map((e) => e.action)).toEqual([
        "organization.unfrozen",
        "organization.frozen",
        ...Array.from({ length: 7 }, () => "organization.updated")
      ])
      expect(entries.map((e) => e.action)).toContain("organization.created")
      const ids = entries.map((e) => BigInt(e.id))
      const byAction = (action: string) => entries.filter((e) => e.action === action).map((e) => e.id)
      expect(ids).toEqual([...ids].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0)))
      expect(entries[1]).toMatchObject({
        actorId: admin.userId,
        target: `organization:${org.id}`,
        ip,
        userAgent: "admin-console/1.0",
        requestId: "freeze-request-1",
        revision: freeze.body.revision,
        data: { before: { status: "active" }, after: { status: "frozen" } }
      })
      expect(entries[2]).toMatchObject({ actorId: owner.userId, action: "organization.updated" })

      // Pages of 3 over 10 or more entries (3 + 3 + 3 + 1 …): the same entries in the same order.
      const paged = await auditAll(owner.token, org.id, "", 3)
      expect(entries.length).toBeGreaterThanOrEqual(10)
      expect(paged.pages).toBe(Math.ceil(entries.length / 3))
      expect(paged.items.map((e) => e.id)).toEqual(entries.map((e) => e.id))
      const updates = await auditAll(owner.token, org.id, "action=organization.updated", 3)
      expect(updates.pages).toBe(3)
      expect(updates.items.map((e) => e.id)).toEqual(byAction("organization.updated"))

      const filtered = async (params: string) => (await auditPage(owner.token, org.id, params)).body.items
      expect((await filtered(`actor=${admin.userId}`)).map((e) => e.action)).toEqual([
        "organization.unfrozen",
        "organization.frozen"
      ])
      expect((await filtered(`actor=${owner.userId}`)).map((e) => e.id)).toEqual(
        entries.filter((e) => e.actorId === owner.userId).map((e) => e.id)
      )
      expect((await filtered("action=organization.frozen")).map((e) => e.id)).toEqual([entries[1]!.id])
      expect((await filtered("action=organization.")).map((e) => e.id)).toEqual(
        entries.filter((e) => e.action.startsWith("organization.")).map((e) => e.id)
      )
      expect(await filtered("action=organization")).toHaveLength(0)
      expect((await filtered(`target=organization:${org.id}`)).map((e) => e.id)).toEqual([
        entries[0]!.id,
        entries[1]!.id
      ])
      const pivot = entries[4]!
      const from = await filtered(`from=${pivot.at}`)
      expect(from.map((e) => e.id)).toEqual(entries.filter((e) => e.at >= pivot.at).map((e) => e.id))
      expect(from.map((e) => e.id)).toContain(pivot.id)
      const to = await filtered(`to=${pivot.at}`)
      expect(to.map((e) => e.id)).toEqual(entries.filter((e) => e.at < pivot.at).map((e) => e.id))
      expect(to.map((e) => e.id)).not.toContain(pivot.id)
      expect(
        (await filtered(`actor=${owner.userId}&action=organization.updated&from=${pivot.at}`)).map((e) => e.id)
      ).toEqual(entries.filter((e) => e.action === "organization.updated" && e.at >= pivot.at).map((e) => e.id))

      const viaRpc = await rpc(owner.token)((c) =>
        c.audit.list({
          organizationId: org.id,
          action: "organization.",
          from: DateTime.unsafeMake(pivot.at),
          limit: 2
        })
      )
      expect(Either.isRight(viaRpc) && viaRpc.right.items.map((e) => e.id)).toEqual(
        entries
          .filter((e) => e.at >= pivot.at)
          .slice(0, 2)
          .map((e) => e.id)
      )
      expect(Either.isRight(viaRpc) && viaRpc.right.nextCursor).toEqual(expect.any(String))
    })

    it("shows an organization only its own entries, hides other tenants (404) and needs audit:read (403 naming it)", async () => {
      const ownerA = await signUp("tenant-a")
      const ownerB = await signUp("tenant-b")
      const orgA = await createOrg(ownerA.token, `audit-a-${Date.now()}`)
      const orgB = await createOrg(ownerB.token, `audit-b-${Date.now()}`)
      await api.call("PATCH", `/v1/orgs/${orgB.id}`, { token: ownerB.token, body: { name: "B secret name" } })
      await api.call("PATCH", `/v1/orgs/${orgA.id}`, { token: ownerA.token, body: { name: "A public name" } })

      const a = await auditPage(ownerA.token, orgA.id)
      expect(a.status).toBe(200)
      expect(a.body.items.map((e) => e.action)).toEqual(
        expect.arrayContaining(["organization.updated", "organization.created"])
      )
      expect(a.body.items.every((e) => e.actorId === ownerA.userId)).toBe(true)
      expect(JSON.stringify(a.body)).not.toContain("B secret name")
      const withForeignParam = await auditPage(ownerA.token, orgA.id, `organizationId=${orgB.id}`)
      expect(withForeignParam.body.items.map((e) => e.id)).toEqual(a.body.items.map((e) => e.id))

      const foreign = await auditPage(ownerA.token, orgB.id)
      expect(foreign.status).toBe(404)
      expect(foreign.body).toMatchObject({ code: "not_found" })
      const foreignRpc = await rpc(ownerA.token)((c) => c.audit.list({ organizationId: orgB.id }))
      expect(Either.isLeft(foreignRpc) && foreignRpc.left).toBeInstanceOf(NotFound)

      const member = await signUp("audit-member")
      await addMember(orgA.id, member.userId, "member")
      const refused = await auditPage(member.token, orgA.id)
      expect(refused.status).toBe(403)
      expect(refused.body).toMatchObject({ code: "forbidden" })
      expect(String(refused.body.message)).toContain("audit:read")
      const refusedRpc = await rpc(member.token)((c) => c.audit.list({ organizationId: orgA.id }))
      expect(Either.isLeft(refusedRpc) && refusedRpc.left).toBeInstanceOf(Forbidden)
      expect(Either.isLeft(refusedRpc) && (refusedRpc.left as Forbidden).message).toContain("audit:read")
      expect((await auditPage(undefined, orgA.id)).status).toBe(401)
    })

    it("answers 400, never 500, to a garbage or forged cursor and to bad filters", async () => {
      const owner = await signUp("audit-cursor")
      const org = await createOrg(owner.token, `audit-cursor-${Date.now()}`)
      for (const params of [
        "cursor=garbage!",
        "cursor=%00%01",
        `cursor=${Buffer.from("not-a-number").toString("base64url")}`,
        `cursor=${Buffer.from("99999999999999999999999").toString("base64url")}`,
        `cursor=${Buffer.from("9999999999999999999").toString("base64url")}`,
        `cursor=${Buffer.from("-1").toString("base64url")}`,
        `cursor=${Buffer.from("12").toString("base64url")}=`,
        "limit=0",
        "limit=201",
        "actor=someone",
        "from=yesterday",
        "action=Not An Action"
      ]) {
        const reply = await auditPage(owner.token, org.id, params)
        expect(reply.status, params).toBe(400)
        expect(reply.body).toMatchObject({ code: "invalid_payload" })
      }
      const garbage = await rpc(owner.token)((c) => c.audit.list({ organizationId: org.id, cursor: "garbage" }))
      expect(Either.isLeft(garbage) && garbage.left).toBeInstanceOf(BadRequest)
      // A well-formed cursor of a position past the start: an empty page, not an error.
      const past = await auditPage(owner.token, org.id, `cursor=${Buffer.from("1").toString("base64url")}`)
      expect(past.status).toBe(200)
      expect(past.body).toEqual({ items: [] })
    })

    it("is append-only: Postgres refuses to change or delete an entry", async () => {
      const [entry] = await query(database.url, "SELECT id FROM audit_log ORDER BY id LIMIT 1")
      await expect(
        query(database.url, "UPDATE audit_log SET action = 'rewritten' WHERE id = $1", [entry?.id])
      ).rejects.toThrow(/append-only/)
      await expect(query(database.url, "DELETE FROM audit_log WHERE id = $1", [entry?.id])).rejects.toThrow(
        /append-only/
      )
      await expect(query(database.url, "DELETE FROM audit_log")).rejects.toThrow(/append-only/)
      expect(await query(database.url, "SELECT id FROM audit_log WHERE id = $1", [entry?.id])).toHaveLength(1)
    })

    it("never records a password or a token: login, failed login, password change and reset", async () => {
      const first = "first secret passphrase 1"
      const changed = "second secret passphrase 2"
      const wrong = "wrong secret passphrase 3"
      const reset = "third secret passphrase 4"
      const user = await signUp("no-secrets", first)
      expect((await api.login(user.email, wrong)).status).toBe(401)
      const change = await api.call("POST", "/v1/auth/password/change", {
        token: user.token,
        body: { currentPassword: first, newPassword: changed }
      })
      expect(change.status).toBe(204)
      expect((await api.call("POST", "/v1/auth/password/forgot", { body: { email: user.email } })).status).toBe(202)
      const resetToken = tokenIn(
        await waitForMail(node.dataDir, (m) => m.to.includes(user.email) && m.subject === "Reset your password")
      )
      const done = await api.call("POST", "/v1/auth/password/reset", { body: { token: resetToken, password: reset } })
      expect(done.status).toBe(204)
      const login = (await api.login(user.email, reset)).body as TokenPairBody
      const refreshed = (await api.refresh(login.refreshToken)).body as TokenPairBody

      const rows = await query(
        database.url,
        "SELECT action, a::text AS row FROM audit_log a WHERE actor_id = $1 OR data::text LIKE '%' || $2 || '%'",
        [user.userId, user.email]
      )
      expect(rows.map((r) => r.action)).toEqual(
        expect.arrayContaining(["login.succeeded", "login.failed", "password.changed", "password.reset"])
      )
      const secrets = [
        first,
        changed,
        wrong,
        reset,
        resetToken,
        user.tokens.accessToken,
        user.tokens.refreshToken,
        login.accessToken,
        login.refreshToken,
        refreshed.accessToken,
        refreshed.refreshToken
      ]
      const everything = (await query(database.url, "SELECT a::text AS row FROM audit_log a")).map((r) => String(r.row))
      for (const secret of secrets) {
        expect(everything.filter((row) => row.includes(secret))).toEqual([])
      }
      expect(everything.filter((row) => row.includes("$argon2"))).toEqual([])
    })
  })
})
