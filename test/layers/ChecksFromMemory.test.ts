/**
 * The in-memory check path on two nodes, against decisions read straight from Postgres: random
 * changes, written as the product writes them (a transaction that moves the revision and records
 * its events), relayed to both nodes' feeds; after each one, checks on both nodes in every mode.
 * `latest` and `minRevision` must answer at the change's revision exactly as Postgres decides at it;
 * `cached` at whichever revision it says, exactly as Postgres decided at that revision.
 */
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Exit, Layer, ManagedRuntime, Redacted, Schema, Scope, String as Str } from "effect"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { judge, makePolicy, type Standing } from "../../src/domain/Policy.ts"
import { assembleRoles } from "../../src/domain/RoleGraph.ts"
import { runMigrations } from "../../src/layers/Database.ts"
import { OutboxLive } from "../../src/layers/events/OutboxLive.ts"
import * as OutboxRelay from "../../src/layers/events/OutboxRelay.ts"
import { EventStreamMemory } from "../../src/layers/memory/EventStreamMemory.ts"
import { KeyValueStoreMemory } from "../../src/layers/memory/KeyValueStoreMemory.ts"
import { PermissionStoreLive } from "../../src/layers/rbac/PermissionStoreLive.ts"
import { GrantRow, ParentRow } from "../../src/layers/rbac/RbacSql.ts"
import { decodeRows } from "../../src/layers/Sql.ts"
import { Outbox } from "../../src/services/Outbox.ts"
import { PermissionStore, type PermissionStoreShape } from "../../src/services/PermissionStore.ts"
import { createTestDatabase, type TestDatabase } from "../support/TestDatabase.ts"

const KEYS = ["docs:read", "docs:write", "billing:read"]
const PATTERNS = [...KEYS, "docs:*", "*"]

const change = fc.oneof(
  fc.record({ op: fc.constant("assign" as const), user: fc.nat(2), role: fc.nat(2), scoped: fc.boolean() }),
  fc.record({ op: fc.constant("unassign" as const), user: fc.nat(2) }),
  fc.record({
    op: fc.constant("grant" as const),
    role: fc.nat(2),
    permission: fc.constantFrom(...PATTERNS),
    effect: fc.constantFrom<"allow" | "deny">("allow", "allow", "deny")
  }),
  fc.record({ op: fc.constant("ungrant" as const), role: fc.nat(2) }),
  fc.record({ op: fc.constant("disable" as const), user: fc.nat(2), disabled: fc.boolean() }),
  fc.record({ op: fc.constant("freeze" as const), frozen: fc.boolean() })
)
type Change = typeof change extends fc.Arbitrary<infer A> ? A : never

const idRows = decodeRows(Schema.Struct({ id: Schema.String }))

describe("checks from memory on two nodes", () => {
  let database: TestDatabase
  // biome-ignore lint/suspicious/noExplicitAny: the shared layers' services, whatever the nodes need
  let runtime: ManagedRuntime.ManagedRuntime<any, unknown>
  let nodes: ReadonlyArray<PermissionStoreShape>
  let scope: Scope.CloseableScope

  beforeAll(async () => {
    database = await createTestDatabase()
    const shared = Layer.mergeAll(OutboxLive, KeyValueStoreMemory, EventStreamMemory).pipe(
      Layer.provideMerge(Layer.effectDiscard(runMigrations)),
      Layer.provideMerge(
        PgClient.layer({
          url: Redacted.make(database.url),
          transformResultNames: Str.snakeToCamel,
          transformQueryNames: Str.camelToSnake
        })
      )
    )
    const node = Effect.map(Layer.build(Layer.fresh(PermissionStoreLive)), Context.get(PermissionStore))
    const relay = OutboxRelay.layer({ maxLength: 10_000, retention: "1 hour", pollInterval: "50 millis" })
    runtime = ManagedRuntime.make(Layer.merge(shared, relay.pipe(Layer.provide(shared))))
    scope = await runtime.runPromise(Scope.make())
    nodes = await runtime.runPromise(Effect.all([node, node]).pipe(Scope.extend(scope)))
  })

  afterAll(async () => {
    await runtime.runPromise(Scope.close(scope, Exit.void))
    await runtime.dispose()
    await database.drop()
  })

  /** The organization, three members, three roles (role 2 inherits from role 1). */
  const setUp = Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const [org] = yield* sql`
      INSERT INTO organizations (slug, name) VALUES (${`p-${crypto.randomUUID()}`}, 'P') RETURNING id::text AS id`.pipe(
      idRows
    )
    const organizationId = org!.id
    for (const key of KEYS)
      yield* sql`INSERT INTO permissions (organization_id, key) VALUES (${organizationId}, ${key})`
    const users: Array<string> = []
    const roles: Array<string> = []
    for (let i = 0; i < 3; i++) {
      const [user] = yield* sql`
        INSERT INTO users (email, name) VALUES (${`${crypto.randomUUID()}@example.com`}, 'U') RETURNING id::text AS id`.pipe(
        idRows
      )
      users.push(user!.id)
      yield* sql`INSERT INTO memberships (organization_id, user_id) VALUES (${organizationId}, ${user!.id})`
      const [role] = yield* sql`
        INSERT INTO roles (organization_id, name) VALUES (${organizationId}, ${`r${i}`}) RETURNING id::text AS id`.pipe(
        idRows
      )
      roles.push(role!.id)
    }
    yield* sql`INSERT INTO role_parents (organization_id, role_id, parent_id) VALUES (${organizationId}, ${roles[2]!}, ${roles[1]!})`
    return { organizationId, users, roles }
  })

  type Org = Effect.Effect.Success<typeof setUp>

  /** One change in one transaction that moves the revision; returns the revision. */
  const apply = (org: Org, c: Change) =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const outbox = yield* Outbox
      const { organizationId, users, roles } = org
      return yield* outbox.transaction(
        Effect.gen(function* () {
          switch (c.op) {
            case "assign": {
              const userId = users[c.user]!
              yield* sql`
                INSERT INTO assignments (organization_id, user_id, role_id, scope_type, scope_id)
                VALUES (${organizationId}, ${userId}, ${roles[c.role]!}, ${c.scoped ? "project" : null}, ${c.scoped ? "1" : null})
                ON CONFLICT DO NOTHING`
              return yield* outbox.record(organizationId, [{ type: "assignment.added", payload: { userId } }])
            }
            case "unassign": {
              const userId = users[c.user]!
              yield* sql`DELETE FROM assignments WHERE id = (
                SELECT id FROM assignments WHERE organization_id = ${organizationId} AND user_id = ${userId} LIMIT 1)`
              return yield* outbox.record(organizationId, [{ type: "assignment.removed", payload: { userId } }])
            }
            case "grant": {
              const roleId = roles[c.role]!
              yield* sql`
                INSERT INTO role_grants (organization_id, role_id, permission, effect)
                VALUES (${organizationId}, ${roleId}, ${c.permission}, ${c.effect}) ON CONFLICT DO NOTHING`
              return yield* outbox.record(organizationId, [{ type: "role.grants_changed", payload: { roleId } }])
            }
            case "ungrant": {
              const roleId = roles[c.role]!
              yield* sql`DELETE FROM role_grants WHERE id = (
                SELECT id FROM role_grants WHERE organization_id = ${organizationId} AND role_id = ${roleId} LIMIT 1)`
              return yield* outbox.record(organizationId, [{ type: "role.grants_changed", payload: { roleId } }])
            }
            case "disable": {
              const userId = users[c.user]!
              yield* sql`UPDATE users SET disabled_at = ${c.disabled ? new Date() : null} WHERE id = ${userId}`
              const type = c.disabled ? "user.disabled" : "user.enabled"
              return yield* outbox.record(organizationId, [{ type, payload: { userId } }])
            }
            case "freeze": {
              yield* sql`UPDATE organizations SET status = ${c.frozen ? "frozen" : "active"} WHERE id = ${organizationId}`
              const type = c.frozen ? "organization.frozen" : "organization.unfrozen"
              return yield* outbox.record(organizationId, [{ type, payload: { organizationId } }])
            }
          }
        })
      )
    })

  /** Every answer Postgres gives now, read straight from its tables and decided by the pure rules. */
  const truth = (org: Org) =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const { organizationId, users } = org
      const [head] = yield* sql<{ revision: string; status: string }>`
        SELECT revision::text AS revision, status FROM organizations WHERE id = ${organizationId}`
      const roles = yield* sql<{ id: string; name: string }>`
        SELECT id::text AS id, name FROM roles WHERE organization_id = ${organizationId}`
      const parents = yield* sql`
        SELECT role_id::text AS role_id, parent_id::text AS parent_id FROM role_parents
        WHERE organization_id = ${organizationId}`.pipe(decodeRows(ParentRow))
      const grants = yield* sql`
        SELECT role_id::text AS role_id, permission, effect, condition::text AS condition FROM role_grants
        WHERE organization_id = ${organizationId} ORDER BY id`.pipe(decodeRows(GrantRow))
      const policy = makePolicy(
        assembleRoles(
          roles,
          parents,
          grants.map((grant) => ({ ...grant, condition: grant.condition ?? undefined }))
        ),
        KEYS
      )
      const answers = new Map<string, boolean>()
      for (const userId of users) {
        const [user] = yield* sql<{ enabled: boolean; member: boolean }>`
          SELECT u.disabled_at IS NULL AS enabled, EXISTS (SELECT 1 FROM memberships m
            WHERE m.organization_id = ${organizationId} AND m.user_id = u.id) AS member
          FROM users u WHERE u.id = ${userId}`
        const assignments = yield* sql<{
          id: string
          roleId: string
          scopeType: string | null
          scopeId: string | null
        }>`
          SELECT id::text AS id, role_id::text AS role_id, scope_type, scope_id FROM assignments
          WHERE organization_id = ${organizationId} AND user_id = ${userId}`
        const standing: Standing = {
          member: user!.member,
          enabled: user!.enabled,
          assignments: assignments.map((a) => ({
            id: a.id,
            roleId: a.roleId,
            scope: a.scopeType === null || a.scopeId === null ? undefined : { type: a.scopeType, id: a.scopeId },
            expiresAt: undefined
          }))
        }
        for (const permission of KEYS) {
          for (const resource of [undefined, { type: "project", id: "1" }]) {
            const input = { subject: { id: userId }, permission, resource, now: Date.now() }
            answers.set(
              `${userId} ${permission} ${resource?.id ?? "-"}`,
              judge(policy, head!.status === "frozen", standing, input).allowed
            )
          }
        }
      }
      return { revision: head!.revision, answers }
    })

  it("answers every check on either node as Postgres decides at the revision the answer names", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(change, { minLength: 4, maxLength: 12 }), async (changes) => {
        let synchronous = 0
        const mismatches = await runtime.runPromise(
          Effect.gen(function* () {
            const org = yield* setUp
            const truths = new Map<string, Map<string, boolean>>()
            const found: Array<string> = []
            const first = yield* truth(org)
            truths.set(first.revision, first.answers)
            for (const c of changes) {
              const revision = yield* apply(org, c)
              const now = yield* truth(org)
              expect(now.revision).toBe(revision)
              truths.set(revision, now.answers)
              for (const [n, store] of nodes.entries()) {
                for (const key of now.answers.keys()) {
                  const [userId, permission, scope] = key.split(" ") as [string, string, string]
                  const request = {
                    organizationId: org.organizationId,
                    userId,
                    permission,
                    resource: scope === "-" ? undefined : { type: "project", id: scope }
                  }
                  // The live socket's synchronous path: when memory decides, it must decide the same.
                  const fromMemory = store.checkNow({ ...request, minRevision: revision })
                  if (fromMemory !== undefined) synchronous += 1
                  if (fromMemory !== undefined && truths.get(fromMemory.revision)?.get(key) !== fromMemory.allowed) {
                    found.push(`node ${n} checkNow ${c.op}: ${key} at ${fromMemory.revision}: ${fromMemory.allowed}`)
                  }
                  for (const mode of ["latest", "minRevision", "cached"] as const) {
                    const answer = yield* store.check({
                      ...request,
                      ...(mode === "minRevision" ? { minRevision: revision } : {}),
                      ...(mode === "cached" ? { consistency: "cached" as const } : {})
                    })
                    if (mode !== "cached" && answer.revision !== revision) {
                      found.push(`node ${n} ${mode} answered at ${answer.revision}, not ${revision}`)
                    }
                    const wanted = truths.get(answer.revision)?.get(key)
                    if (wanted === undefined) found.push(`node ${n} ${mode} answered at unknown ${answer.revision}`)
                    else if (wanted !== answer.allowed) {
                      found.push(
                        `node ${n} ${mode} ${c.op}: ${key} at ${answer.revision}: ${answer.allowed}, Postgres ${wanted}`
                      )
                    }
                  }
                }
              }
            }
            return found
          })
        )
        expect(mismatches).toEqual([])
        // The synchronous path was taken, not only refused.
        expect(synchronous).toBeGreaterThan(0)
      }),
      { numRuns: 6 }
    )
  }, 240_000)
})
