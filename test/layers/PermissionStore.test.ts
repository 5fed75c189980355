import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, ManagedRuntime, Redacted, String as Str, TestClock, TestContext } from "effect"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Assignment, type Condition, decide, type Grant, type Role } from "../../src/domain/Decision.ts"
import { runMigrations } from "../../src/layers/Database.ts"
import { OutboxLive } from "../../src/layers/events/OutboxLive.ts"
import { EventStreamMemory } from "../../src/layers/memory/EventStreamMemory.ts"
import { KeyValueStoreMemory } from "../../src/layers/memory/KeyValueStoreMemory.ts"
import { PermissionStoreLive } from "../../src/layers/rbac/PermissionStoreLive.ts"
import { PermissionStore } from "../../src/services/PermissionStore.ts"
import { createTestDatabase, type TestDatabase } from "../support/TestDatabase.ts"

const RESOURCES = ["docs", "billing", "members"]
const ACTIONS = ["read", "write", "delete"]
const KEYS = RESOURCES.flatMap((r) => ACTIONS.map((a) => `${r}:${a}`))
const OWNER_ONLY: Condition = { eq: [{ var: "resource.attributes.ownerId" }, { var: "subject.id" }] }
const NOW = Date.now()

const grantArb: fc.Arbitrary<Grant> = fc.record({
  permission: fc.constantFrom(...KEYS, "docs:*", "billing:*", "*"),
  effect: fc.constantFrom<"allow" | "deny">("allow", "allow", "allow", "deny"),
  condition: fc.option(fc.constant(OWNER_ONLY), { nil: undefined })
})

/** Roles 0..n-1 whose parents always have a lower index, so the graph is a DAG. */
const orgArb = fc.integer({ min: 2, max: 7 }).chain((count) =>
  fc.record({
    roles: fc.tuple(
      ...Array.from({ length: count }, (_, i) =>
        fc.record({
          parents: fc.uniqueArray(fc.integer({ min: 0, max: Math.max(0, i - 1) }), { maxLength: i === 0 ? 0 : 2 }),
          grants: fc.array(grantArb, { maxLength: 4 })
        })
      )
    ),
    assignments: fc.uniqueArray(
      fc.record({
        role: fc.integer({ min: 0, max: count - 1 }),
        scope: fc.option(fc.constantFrom("1", "2"), { nil: undefined }),
        expiresIn: fc.option(fc.constantFrom(-60_000, 3_600_000), { nil: undefined })
      }),
      { minLength: 1, maxLength: 4, selector: (a) => `${a.role}/${a.scope}` }
    )
  })
)

type GeneratedOrg = typeof orgArb extends fc.Arbitrary<infer A> ? A : never

describe("PermissionStore on Postgres", () => {
  let database: TestDatabase
  let runtime: ManagedRuntime.ManagedRuntime<PermissionStore | SqlClient.SqlClient, unknown>

  beforeAll(async () => {
    database = await createTestDatabase()
    const client = PgClient.layer({
      url: Redacted.make(database.url),
      transformResultNames: Str.snakeToCamel,
      transformQueryNames: Str.camelToSnake
    })
    runtime = ManagedRuntime.make(
      PermissionStoreLive.pipe(
        Layer.provide(Layer.mergeAll(KeyValueStoreMemory, OutboxLive, EventStreamMemory)),
        Layer.provideMerge(Layer.effectDiscard(runMigrations)),
        Layer.provideMerge(client)
      )
    )
    await runtime.runPromise(Effect.void)
  })

  afterAll(async () => {
    await runtime.dispose()
    await database.drop()
  })

  /** Writes a generated organization and returns it in the in-memory shape. */
  const insert = (org: GeneratedOrg) =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const [{ id: organizationId }] = (yield* sql<{ id: string }>`
        INSERT INTO organizations (slug, name) VALUES (${`org-${crypto.randomUUID()}`}, 'Generated') RETURNING id`) as [
        { id: string }
      ]
      const [{ id: userId }] = (yield* sql<{ id: string }>`
        INSERT INTO users (email, name) VALUES (${`${crypto.randomUUID()}@example.com`}, 'U') RETURNING id`) as [
        { id: string }
      ]
      yield* sql`INSERT INTO memberships (organization_id, user_id) VALUES (${organizationId}, ${userId})`
      for (const key of KEYS) {
        yield* sql`INSERT INTO permissions (organization_id, key) VALUES (${organizationId}, ${key})`
      }
      const ids: Array<string> = []
      for (let i = 0; i < org.roles.length; i++) {
        const [row] = yield* sql<{ id: string }>`
          INSERT INTO roles (organization_id, name) VALUES (${organizationId}, ${`role-${i}`}) RETURNING id`
        ids.push(row!.id)
      }
      const roles: Array<Role> = org.roles.map((role, i) => ({
        id: ids[i]!,
        name: `role-${i}`,
        parents: role.parents.map((p) => ids[p]!),
        grants: role.grants
      }))
      for (const role of roles) {
        for (const parent of role.parents) {
          yield* sql`INSERT INTO role_parents (organization_id, role_id, parent_id) VALUES (${organizationId}, ${role.id}, ${parent})`
        }
        for (const grant of role.grants) {
          yield* sql`
            INSERT INTO role_grants (organization_id, role_id, permission, effect, condition)
            VALUES (${organizationId}, ${role.id}, ${grant.permission}, ${grant.effect},
                    ${grant.condition === undefined ? null : JSON.stringify(grant.condition)}::jsonb)`
        }
      }
      const assignments: Array<Assignment> = []
      for (const a of org.assignments) {
        const expiresAt = a.expiresIn === undefined ? undefined : NOW + a.expiresIn
        const [row] = yield* sql<{ id: string }>`
          INSERT INTO assignments (organization_id, user_id, role_id, scope_type, scope_id, expires_at)
          VALUES (${organizationId}, ${userId}, ${ids[a.role]!}, ${a.scope === undefined ? null : "project"}, ${a.scope ?? null},
                  ${expiresAt === undefined ? null : new Date(expiresAt)})
          RETURNING id`
        assignments.push({
          id: row!.id,
          roleId: ids[a.role]!,
          scope: a.scope === undefined ? undefined : { type: "project", id: a.scope },
          expiresAt
        })
      }
      return { organizationId, userId, roles, assignments }
    })

  it("answers every check as the semantics computed in memory do, for random role graphs and assignments", async () => {
    await fc.assert(
      fc.asyncProperty(orgArb, async (org) => {
        const answers = await runtime.runPromise(
          Effect.gen(function* () {
            const { organizationId, userId, roles, assignments } = yield* insert(org)
            const store = yield* PermissionStore
            const results: Array<{ stored: boolean; expected: boolean; permission: string; where: string }> = []
            for (const permission of KEYS) {
              for (const resource of [
                undefined,
                { type: "project", id: "1", attributes: { ownerId: userId } },
                { type: "project", id: "2", attributes: { ownerId: "someone-else" } },
                { type: "project", id: "1" }
              ]) {
                const stored = yield* store.check({ organizationId, userId, permission, resource })
                const expected = decide(
                  { subject: { id: userId }, permission, resource, now: Date.now() },
                  roles,
                  assignments
                )
                results.push({
                  stored: stored.allowed,
                  expected: expected.allowed,
                  permission,
                  where: JSON.stringify(resource)
                })
              }
            }
            // What a live client derives from the effective set agrees with the check, on every resource.
            const effective = yield* store.effective(organizationId, userId)
            for (const permission of KEYS) {
              for (const id of ["1", "2", "3"]) {
                const key = `project/${id}`
                const derived =
                  effective.scoped[key]?.includes(permission) === true ||
                  (effective.permissions.includes(permission) &&
                    effective.scopedDenied[key]?.includes(permission) !== true)
                const stored = yield* store.check({
                  organizationId,
                  userId,
                  permission,
                  resource: { type: "project", id }
                })
                results.push({ stored: stored.allowed, expected: derived, permission, where: `${key} (effective set)` })
              }
            }
            return results
          })
        )
        for (const answer of answers)
          expect(answer.stored, `${answer.permission} on ${answer.where}`).toBe(answer.expected)
      }),
      { numRuns: 15 }
    )
  }, 60_000)

  it("denies everything in a frozen organization and to a disabled user, and reports the revision", async () => {
    const result = await runtime.runPromise(
      Effect.gen(function* () {
        const { organizationId, userId } = yield* insert({
          roles: [{ parents: [], grants: [{ permission: "*", effect: "allow", condition: undefined }] }],
          assignments: [{ role: 0, scope: undefined, expiresIn: undefined }]
        })
        const sql = yield* SqlClient.SqlClient
        const store = yield* PermissionStore
        const before = yield* store.check({ organizationId, userId, permission: "docs:read" })
        const effective = yield* store.effective(organizationId, userId)
        yield* sql`UPDATE organizations SET status = 'frozen', revision = revision + 1 WHERE id = ${organizationId}`
        const frozen = yield* store.check({ organizationId, userId, permission: "docs:read" })
        // As the product writes them: every change that decides moves the organization's revision.
        yield* sql`UPDATE organizations SET status = 'active', revision = revision + 1 WHERE id = ${organizationId}`
        yield* sql`UPDATE users SET disabled_at = now() WHERE id = ${userId}`
        yield* sql`UPDATE organizations SET revision = revision + 1 WHERE id = ${organizationId}`
        const disabled = yield* store.check({ organizationId, userId, permission: "docs:read" })
        return { before, effective, frozen, disabled }
      })
    )
    expect(result.before).toMatchObject({ allowed: true, revision: "0" })
    expect(result.effective.permissions).toEqual(expect.arrayContaining(["org:read", "org:delete", "audit:read"]))
    expect(result.frozen).toEqual({
      member: true,
      allowed: false,
      blocked: true,
      reason: "the organization is frozen",
      revision: "1"
    })
    expect(result.disabled).toMatchObject({ allowed: false, reason: "the user is disabled" })
  })

  it("drops an assignment at its expiry instant, on the TestClock, with nothing cached keeping it alive", async () => {
    const answers = await runtime.runPromise(
      Effect.gen(function* () {
        const { organizationId, userId, assignments } = yield* insert({
          roles: [{ parents: [], grants: [{ permission: "docs:read", effect: "allow", condition: undefined }] }],
          assignments: [{ role: 0, scope: undefined, expiresIn: 3_600_000 }]
        })
        const store = yield* PermissionStore
        const expiresAt = assignments[0]!.expiresAt!
        const at = (millis: number) =>
          TestClock.setTime(millis).pipe(
            Effect.zipRight(store.check({ organizationId, userId, permission: "docs:read" })),
            Effect.map((answer) => answer.allowed)
          )
        return {
          before: yield* at(expiresAt - 1),
          // The same cached entry, one millisecond later.
          atExpiry: yield* at(expiresAt),
          after: yield* at(expiresAt + 60_000),
          effective: yield* Effect.zipRight(TestClock.setTime(expiresAt + 1), store.effective(organizationId, userId))
        }
      }).pipe(Effect.provide(TestContext.TestContext))
    )
    expect(answers).toMatchObject({ before: true, atExpiry: false, after: false })
    expect(answers.effective.permissions).not.toContain("docs:read")
  })

  it("lists scoped permissions and scoped denies apart from organization-wide ones, as checks answer", async () => {
    const { effective, checks } = await runtime.runPromise(
      Effect.gen(function* () {
        const { organizationId, userId } = yield* insert({
          roles: [
            {
              parents: [],
              grants: [
                { permission: "org:read", effect: "allow", condition: undefined },
                { permission: "members:read", effect: "allow", condition: undefined }
              ]
            },
            { parents: [], grants: [{ permission: "roles:*", effect: "allow", condition: undefined }] },
            { parents: [], grants: [{ permission: "members:read", effect: "deny", condition: undefined }] }
          ],
          assignments: [
            { role: 0, scope: undefined, expiresIn: undefined },
            { role: 1, scope: "1", expiresIn: undefined },
            { role: 2, scope: "2", expiresIn: undefined }
          ]
        })
        const store = yield* PermissionStore
        const check = (permission: string, id: string) =>
          store
            .check({ organizationId, userId, permission, resource: { type: "project", id } })
            .pipe(Effect.map((answer) => answer.allowed))
        return {
          effective: yield* store.effective(organizationId, userId),
          checks: {
            membersOn2: yield* check("members:read", "2"),
            membersOn1: yield* check("members:read", "1"),
            orgOn2: yield* check("org:read", "2"),
            rolesOn1: yield* check("roles:read", "1"),
            rolesOn2: yield* check("roles:read", "2")
          }
        }
      })
    )
    expect(effective.permissions).toEqual(["members:read", "org:read"])
    expect(effective.scoped).toEqual({
      "project/1": expect.arrayContaining(["roles:read", "roles:create", "roles:update", "roles:delete"])
    })
    // Allowed organization-wide, denied on project/2 by the role assigned there: listed, as the check says.
    expect(effective.scopedDenied).toEqual({ "project/2": ["members:read"] })
    expect(checks).toEqual({ membersOn2: false, membersOn1: true, orgOn2: true, rolesOn1: true, rolesOn2: false })
  })

  /** The organization as Postgres holds it now, read straight from the tables. */
  const readStraight = (organizationId: string, userId: string) =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const roleRows = yield* sql<{
        id: string
        name: string
      }>`SELECT id, name FROM roles WHERE organization_id = ${organizationId}`
      const parents = yield* sql<{ roleId: string; parentId: string }>`
        SELECT role_id, parent_id FROM role_parents WHERE organization_id = ${organizationId}`
      const grants = yield* sql<{
        roleId: string
        permission: string
        effect: "allow" | "deny"
        condition: Condition | null
      }>`
        SELECT role_id, permission, effect, condition FROM role_grants WHERE organization_id = ${organizationId}`
      const rows = yield* sql<{ id: string; roleId: string; scopeId: string | null; expiresAt: Date | null }>`
        SELECT id, role_id, scope_id, expires_at FROM assignments WHERE organization_id = ${organizationId} AND user_id = ${userId}`
      const roles: Array<Role> = roleRows.map((role) => ({
        id: role.id,
        name: role.name,
        parents: parents.filter((p) => p.roleId === role.id).map((p) => p.parentId),
        grants: grants
          .filter((g) => g.roleId === role.id)
          .map((g) => ({ permission: g.permission, effect: g.effect, condition: g.condition ?? undefined }))
      }))
      const assignments: Array<Assignment> = rows.map((a) => ({
        id: a.id,
        roleId: a.roleId,
        scope: a.scopeId === null ? undefined : { type: "project", id: a.scopeId },
        expiresAt: a.expiresAt?.getTime()
      }))
      return { roles, assignments }
    })

  type Mutation =
    | { readonly kind: "grant"; readonly role: number; readonly grant: Grant }
    | { readonly kind: "ungrant"; readonly role: number }
    | { readonly kind: "parent"; readonly role: number; readonly parent: number }
    | { readonly kind: "assign"; readonly role: number; readonly scope: string | undefined }
    | { readonly kind: "unassign" }

  const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
    fc.record({ kind: fc.constant("grant" as const), role: fc.nat(6), grant: grantArb }),
    fc.record({ kind: fc.constant("ungrant" as const), role: fc.nat(6) }),
    fc.record({ kind: fc.constant("parent" as const), role: fc.nat(6), parent: fc.nat(6) }),
    fc.record({
      kind: fc.constant("assign" as const),
      role: fc.nat(6),
      scope: fc.option(fc.constantFrom("1", "2"), { nil: undefined })
    }),
    fc.record({ kind: fc.constant("unassign" as const) })
  )

  /** A change as the RBAC services make it: the change, the revision bump and its outbox row, in one transaction. */
  const apply = (organizationId: string, userId: string, roles: ReadonlyArray<Role>, mutation: Mutation) =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const roleId = (index: number) => roles[index % roles.length]!.id
      const record = (type: string, payload: Record<string, unknown>) =>
        sql`
          WITH bumped AS (UPDATE organizations SET revision = revision + 1 WHERE id = ${organizationId} RETURNING revision)
          INSERT INTO outbox (organization_id, revision, event_type, payload)
          SELECT ${organizationId}, revision, ${type}, ${JSON.stringify(payload)}::jsonb FROM bumped`
      switch (mutation.kind) {
        case "grant":
          yield* sql`
            INSERT INTO role_grants (organization_id, role_id, permission, effect, condition)
            VALUES (${organizationId}, ${roleId(mutation.role)}, ${mutation.grant.permission}, ${mutation.grant.effect},
                    ${mutation.grant.condition === undefined ? null : JSON.stringify(mutation.grant.condition)}::jsonb)`
          return yield* record("role.grants_changed", { roleId: roleId(mutation.role) })
        case "ungrant":
          yield* sql`DELETE FROM role_grants WHERE role_id = ${roleId(mutation.role)}`
          return yield* record("role.grants_changed", { roleId: roleId(mutation.role) })
        case "parent": {
          // Parents keep a lower index than their child, so the graph stays a DAG.
          const child = Math.max(mutation.role % roles.length, mutation.parent % roles.length)
          const parent = Math.min(mutation.role % roles.length, mutation.parent % roles.length)
          if (child === parent) return
          yield* sql`
            INSERT INTO role_parents (organization_id, role_id, parent_id)
            VALUES (${organizationId}, ${roles[child]!.id}, ${roles[parent]!.id}) ON CONFLICT DO NOTHING`
          return yield* record("role.parents_changed", { roleId: roles[child]!.id, parentIds: [roles[parent]!.id] })
        }
        case "assign": {
          const [row] = yield* sql<{ id: string }>`
            INSERT INTO assignments (organization_id, user_id, role_id, scope_type, scope_id)
            VALUES (${organizationId}, ${userId}, ${roleId(mutation.role)},
                    ${mutation.scope === undefined ? null : "project"}, ${mutation.scope ?? null})
            ON CONFLICT DO NOTHING RETURNING id`
          if (row === undefined) return
          return yield* record("assignment.added", { assignmentId: row.id, userId, roleId: roleId(mutation.role) })
        }
        case "unassign": {
          const [row] = yield* sql<{ id: string; roleId: string }>`
            DELETE FROM assignments WHERE id = (SELECT id FROM assignments WHERE organization_id = ${organizationId}
              AND user_id = ${userId} ORDER BY created_at LIMIT 1) RETURNING id, role_id`
          if (row === undefined) return
          return yield* record("assignment.removed", { assignmentId: row.id, userId, roleId: row.roleId })
        }
      }
    }).pipe(
      Effect.flatMap(() => Effect.void),
      (effect) => Effect.flatMap(SqlClient.SqlClient, (sql) => sql.withTransaction(effect))
    )

  it("answers from its cache exactly as a decision computed straight from Postgres, after every change", async () => {
    await fc.assert(
      fc.asyncProperty(orgArb, fc.array(mutationArb, { minLength: 1, maxLength: 8 }), async (org, mutations) => {
        const mismatches = await runtime.runPromise(
          Effect.gen(function* () {
            const { organizationId, userId, roles } = yield* insert(org)
            const store = yield* PermissionStore
            const found: Array<string> = []
            const compare = (step: string) =>
              Effect.gen(function* () {
                const straight = yield* readStraight(organizationId, userId)
                const effective = yield* store.effective(organizationId, userId)
                for (const permission of KEYS) {
                  for (const resource of [undefined, { type: "project", id: "1", attributes: { ownerId: userId } }]) {
                    const cached = yield* store.check({ organizationId, userId, permission, resource })
                    const expected = decide(
                      { subject: { id: userId }, permission, resource, now: Date.now() },
                      straight.roles,
                      straight.assignments
                    ).allowed
                    if (cached.allowed !== expected) found.push(`${step}: ${permission} on ${JSON.stringify(resource)}`)
                    if (resource === undefined && effective.permissions.includes(permission) !== expected) {
                      found.push(`${step}: effective set and ${permission}`)
                    }
                  }
                }
              })
            yield* compare("initial")
            for (const [index, mutation] of mutations.entries()) {
              yield* apply(organizationId, userId, roles, mutation)
              yield* compare(`after ${index}: ${JSON.stringify(mutation)}`)
            }
            return found
          })
        )
        expect(mismatches).toEqual([])
      }),
      { numRuns: 25 }
    )
  }, 120_000)
})
