import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Effect, Fiber, Redacted, Stream } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { migrations } from "../migrations/index.ts"
import { BUILT_IN_PERMISSIONS } from "../src/domain/Catalog.ts"
import { runMigrations } from "../src/layers/Database.ts"
import { createTestDatabase, query, type TestDatabase } from "./support/TestDatabase.ts"

const schema = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  return yield* sql<{ tableName: string; columnName: string; dataType: string }>`
    SELECT table_name, column_name, data_type FROM information_schema.columns
    WHERE table_schema = 'public' ORDER BY table_name, column_name`
})

/** A fresh database with every migration applied, for the describe block that calls it. */
const migratedDatabase = () => {
  const handle = { database: undefined as unknown as TestDatabase }
  beforeAll(async () => {
    handle.database = await createTestDatabase()
    await Effect.runPromise(
      runMigrations.pipe(Effect.provide(PgClient.layer({ url: Redacted.make(handle.database.url) })))
    )
  })
  afterAll(async () => {
    await handle.database.drop()
  })
  return handle
}

describe("migrations", () => {
  let database: TestDatabase
  beforeAll(async () => {
    database = await createTestDatabase()
  })
  afterAll(async () => {
    await database.drop()
  })

  it("apply in order once; running them again changes nothing", async () => {
    const result = await Effect.gen(function* () {
      const first = yield* runMigrations
      const afterFirst = yield* schema
      const second = yield* runMigrations
      // The migration bodies are idempotent too, should one be run by hand.
      for (const migration of Object.values(migrations)) yield* migration
      const afterSecond = yield* schema
      const sql = yield* SqlClient.SqlClient
      const builtIn = yield* sql<{ key: string; description: string }>`
        SELECT key, description FROM permissions WHERE organization_id IS NULL ORDER BY key COLLATE "C"`
      const recorded = yield* sql<{
        migrationId: number
      }>`SELECT migration_id FROM effect_sql_migrations ORDER BY migration_id`
      return { first, second, afterFirst, afterSecond, recorded, builtIn }
    }).pipe(
      Effect.provide(
        PgClient.layer({
          url: Redacted.make(database.url),
          transformResultNames: (s) => s.replace(/_(\w)/g, (_, c) => c.toUpperCase())
        })
      ),
      Effect.runPromise
    )
    expect(result.first.map(([id, name]) => `${id}_${name}`)).toEqual([
      "1_core",
      "2_auth",
      "3_rbac",
      "4_rbac_runtime",
      "5_builtin_permissions",
      "6_account_deletion",
      "7_email_nfc",
      "8_outbox_notify"
    ])
    expect(result.second).toEqual([])
    expect(result.afterSecond).toEqual(result.afterFirst)
    expect(result.recorded).toEqual([1, 2, 3, 4, 5, 6, 7, 8].map((migrationId) => ({ migrationId })))
    const tables = new Set(result.afterFirst.map((column) => column.tableName))
    expect([...tables]).toEqual(
      expect.arrayContaining(["users", "organizations", "memberships", "outbox", "audit_log"])
    )
    expect(result.afterFirst).toContainEqual({ tableName: "organizations", columnName: "revision", dataType: "bigint" })
    // The catalog's built-in keys are in the database, once each, with their descriptions: a key added
    // to Catalog.ts without a migration that inserts it fails here.
    expect(result.builtIn).toEqual(
      BUILT_IN_PERMISSIONS.map(([key, description]) => ({ key, description })).sort((a, b) =>
        a.key < b.key ? -1 : a.key > b.key ? 1 : 0
      )
    )
  })
})

describe("outbox notifications", () => {
  const migrated = migratedDatabase()

  it("notify outbox_committed when rows are committed, not before, and not for a rolled-back change", async () => {
    const received = await Effect.gen(function* () {
      const pg = yield* PgClient.PgClient
      const sql = yield* SqlClient.SqlClient
      const heard: Array<string> = []
      const listening = yield* Effect.fork(
        pg.listen("outbox_committed").pipe(Stream.runForEach((payload) => Effect.sync(() => heard.push(payload))))
      )
      // LISTEN is issued on the fiber's own connection: give it time to be in place.
      yield* Effect.sleep("300 millis")
      const insert = sql`INSERT INTO outbox (event_type, payload) VALUES ('test.event', '{}')`
      const inTransaction = yield* sql.withTransaction(
        Effect.zipRight(insert, Effect.sync(() => heard.length))
      )
      yield* sql.withTransaction(Effect.zipRight(insert, Effect.fail("roll back"))).pipe(Effect.ignore)
      yield* Effect.sleep("300 millis")
      const afterRollback = heard.length
      yield* insert
      while (heard.length < 2) yield* Effect.sleep("20 millis")
      yield* Fiber.interrupt(listening)
      return { inTransaction, afterRollback, total: heard.length }
    }).pipe(
      Effect.timeout("20 seconds"),
      Effect.provide(PgClient.layer({ url: Redacted.make(migrated.database.url) })),
      Effect.runPromise
    )
    expect(received).toEqual({ inTransaction: 0, afterRollback: 1, total: 2 })
  })
})

describe("tenant boundaries in the schema", () => {
  const migrated = migratedDatabase()

  it("refuses a role parent, grant or assignment that crosses organizations, and an assignment to a non-member", async () => {
    const { database } = migrated
    const one = async (text: string, values: Array<unknown> = []) =>
      (await query(database.url, text, values))[0] as { id: string }
    const orgA = (await one("INSERT INTO organizations (slug, name) VALUES ('a', 'A') RETURNING id")).id
    const orgB = (await one("INSERT INTO organizations (slug, name) VALUES ('b', 'B') RETURNING id")).id
    const user = (await one("INSERT INTO users (email, name) VALUES ('m@example.com', 'M') RETURNING id")).id
    await query(database.url, "INSERT INTO memberships (organization_id, user_id) VALUES ($1, $2)", [orgA, user])
    const roleA = (await one("INSERT INTO roles (organization_id, name) VALUES ($1, 'ra') RETURNING id", [orgA])).id
    const roleB = (await one("INSERT INTO roles (organization_id, name) VALUES ($1, 'rb') RETURNING id", [orgB])).id
    const fails = (text: string, values: Array<unknown>) => expect(query(database.url, text, values)).rejects.toThrow()

    await fails("INSERT INTO role_parents (organization_id, role_id, parent_id) VALUES ($1, $2, $3)", [
      orgA,
      roleA,
      roleB
    ])
    await fails(
      "INSERT INTO role_grants (organization_id, role_id, permission, effect) VALUES ($1, $2, 'docs:read', 'allow')",
      [orgA, roleB]
    )
    await fails("INSERT INTO assignments (organization_id, user_id, role_id) VALUES ($1, $2, $3)", [orgA, user, roleB])
    await fails("INSERT INTO assignments (organization_id, user_id, role_id) VALUES ($1, $2, $3)", [orgB, user, roleB])
    await fails(
      "INSERT INTO role_grants (organization_id, role_id, permission, effect) VALUES ($1, $2, 'Docs:Read', 'allow')",
      [orgA, roleA]
    )
    await query(database.url, "INSERT INTO assignments (organization_id, user_id, role_id) VALUES ($1, $2, $3)", [
      orgA,
      user,
      roleA
    ])
    await query(
      database.url,
      "INSERT INTO role_grants (organization_id, role_id, permission, effect) VALUES ($1, $2, '*', 'allow')",
      [orgA, roleA]
    )
  })
})

describe("an account deleted in the database", () => {
  const migrated = migratedDatabase()

  it("records one sessions.revoked event for its open sessions, in the same transaction, and none without", async () => {
    const { database } = migrated
    const one = async (text: string, values: Array<unknown> = []) =>
      (await query(database.url, text, values))[0] as { id: string }
    const user = async (email: string) =>
      (await one("INSERT INTO users (email, name) VALUES ($1, 'U') RETURNING id", [email])).id
    const session = async (userId: string, revoked: boolean) =>
      (
        await one(
          `INSERT INTO sessions (user_id, idle_expires_at, absolute_expires_at, revoked_at)
           VALUES ($1, now() + interval '1 day', now() + interval '30 days', ${revoked ? "now()" : "NULL"}) RETURNING id`,
          [userId]
        )
      ).id
    const withSessions = await user("gone@example.com")
    const open = [await session(withSessions, false), await session(withSessions, false)]
    await session(withSessions, true)
    const without = await user("never-signed-in@example.com")
    const events = () =>
      query(
        database.url,
        "SELECT event_type, organization_id, revision, payload FROM outbox WHERE event_type = 'sessions.revoked'"
      )

    await query(database.url, "DELETE FROM users WHERE id = $1", [without])
    expect(await events()).toEqual([])
    await query(database.url, "DELETE FROM users WHERE id = $1", [withSessions])
    const recorded = (await events()) as Array<{ payload: { sessionIds: Array<string> } }>
    expect(recorded).toHaveLength(1)
    expect(recorded[0]!).toMatchObject({ organization_id: null, revision: null })
    expect(recorded[0]!.payload).toEqual({
      userId: withSessions,
      sessionIds: expect.any(Array),
      reason: "account_deleted"
    })
    expect([...recorded[0]!.payload.sessionIds].sort()).toEqual([...open].sort())
    expect(await query(database.url, "SELECT id FROM sessions WHERE user_id = $1", [withSessions])).toEqual([])
  })
})

describe("addresses stored before they were decoded to one key (S49)", () => {
  const migrated = migratedDatabase()

  it("are rewritten to lower case NFC, unless another account holds that key", async () => {
    const { database } = migrated
    const decomposed = "Rene\u0301@Example.com" // e + combining acute
    const clash = "Zoe\u0308@example.com"
    const insert = (email: string) =>
      query(database.url, "INSERT INTO users (email, name) VALUES ($1, 'U') RETURNING id", [email])
    await insert(decomposed)
    await insert(clash)
    await insert("zo\u00eb@example.com") // the key of `clash`, already taken
    await Effect.runPromise(
      migrations["0007_email_nfc"].pipe(Effect.provide(PgClient.layer({ url: Redacted.make(database.url) })))
    )
    const emails = (await query(database.url, "SELECT email FROM users ORDER BY email")).map((row) => row.email)
    expect(emails).toContain("ren\u00e9@example.com")
    expect(emails).toContain(clash)
    expect(emails).toContain("zo\u00eb@example.com")
    expect(emails).not.toContain(decomposed)
  })
})
