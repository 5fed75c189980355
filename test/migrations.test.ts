import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Effect, Redacted } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { migrations } from "../migrations/index.ts"
import { runMigrations } from "../src/layers/Database.ts"
import { createTestDatabase, type TestDatabase } from "./support/TestDatabase.ts"

const schema = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  return yield* sql<{ tableName: string; columnName: string; dataType: string }>`
    SELECT table_name, column_name, data_type FROM information_schema.columns
    WHERE table_schema = 'public' ORDER BY table_name, column_name`
})

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
      const recorded = yield* sql<{
        migrationId: number
      }>`SELECT migration_id FROM effect_sql_migrations ORDER BY migration_id`
      return { first, second, afterFirst, afterSecond, recorded }
    }).pipe(
      Effect.provide(
        PgClient.layer({
          url: Redacted.make(database.url),
          transformResultNames: (s) => s.replace(/_(\w)/g, (_, c) => c.toUpperCase())
        })
      ),
      Effect.runPromise
    )
    expect(result.first.map(([id, name]) => `${id}_${name}`)).toEqual(["1_core", "2_auth"])
    expect(result.second).toEqual([])
    expect(result.afterSecond).toEqual(result.afterFirst)
    expect(result.recorded).toEqual([{ migrationId: 1 }, { migrationId: 2 }])
    const tables = new Set(result.afterFirst.map((column) => column.tableName))
    expect([...tables]).toEqual(
      expect.arrayContaining(["users", "organizations", "memberships", "outbox", "audit_log"])
    )
    expect(result.afterFirst).toContainEqual({ tableName: "organizations", columnName: "revision", dataType: "bigint" })
  })
})
