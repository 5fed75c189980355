import { randomBytes } from "node:crypto"
import pg from "pg"
import { inject } from "vitest"

const { Client } = pg

export interface TestDatabase {
  readonly url: string
  drop(): Promise<void>
}

export const query = async (
  url: string,
  text: string,
  values: ReadonlyArray<unknown> = []
): Promise<Array<Record<string, unknown>>> => {
  const client = new Client({ connectionString: url })
  await client.connect()
  try {
    return (await client.query(text, values as Array<unknown>)).rows
  } finally {
    await client.end()
  }
}

export const createTestDatabase = async (): Promise<TestDatabase> => {
  const adminUrl = inject("databaseUrl")
  const name = `test_${randomBytes(8).toString("hex")}`
  await query(adminUrl, `CREATE DATABASE "${name}"`)
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  let dropped = false
  return {
    url: url.href,
    drop: async () => {
      if (dropped) return
      dropped = true
      await query(adminUrl, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
    }
  }
}

export const testRedisPrefix = (): string => `t:${randomBytes(6).toString("hex")}:`
