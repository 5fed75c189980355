import { readFileSync } from "node:fs"
import { ConfigProvider, Effect } from "effect"
import { describe, expect, it } from "vitest"
import { Settings } from "../../src/layers/Settings.ts"
import { LiveClientDefaults } from "../../src/rpc/LiveClientTypes.ts"
import { CloseCode, Hello, LiveLimits, PermissionsChanged, UpgradeRefusal } from "../../src/rpc/LiveProtocol.ts"

/**
 * docs/live-protocol.md states the limits, refusals, close codes and client defaults the code
 * sets. Each is read here from the code's own constants and looked for in the page's tables, so
 * the page cannot drift from the code.
 */
const page = readFileSync(new URL("../../docs/live-protocol.md", import.meta.url), "utf8")

/** Every table row of the page, as trimmed cells. */
const rows = page
  .split("\n")
  .filter((line) => line.startsWith("|") && !/^\|\s*-/.test(line))
  .map((line) =>
    line
      .slice(1, -1)
      .split("|")
      .map((cell) => cell.trim())
  )

const rowNaming = (constant: string) => {
  const found = rows.filter((cells) => cells.includes(`\`${constant}\``))
  expect(found, `one table row names ${constant}`).toHaveLength(1)
  return found[0]!
}

const KiB = 1024
const MiB = 1024 * 1024

/** A constant's value as the page writes it, from its name's unit. */
const written = (name: string, value: number) => {
  if (name.endsWith("Bytes")) return value % MiB === 0 ? `${value / MiB} MiB` : `${value / KiB} KiB`
  if (name.endsWith("Ms")) return value % 1000 === 0 ? `${value / 1000} s` : `${value} ms`
  if (name.endsWith("Seconds")) return `${value} s`
  return `${value}`
}

/** The value cell holds the value, alone or followed by its unit ("20 messages/s"). */
const expectValue = (cell: string | undefined, value: string) => {
  expect(cell === value || cell?.startsWith(`${value} `), `"${cell}" states ${value}`).toBe(true)
}

describe("docs/live-protocol.md states what the code sets", () => {
  it.each(Object.entries(LiveLimits))("LiveLimits.%s = %s", (name, value) => {
    const [, cell] = rowNaming(`LiveLimits.${name}`)
    expectValue(cell, written(name, value))
  })

  it.each(Object.entries(UpgradeRefusal))("the %s refusal: its status and body", (_name, refusal) => {
    const row = rows.find((cells) => cells[0] === `\`${refusal.status}\``)
    expect(row, `a row for ${refusal.status}`).toBeDefined()
    expect(row?.[1]).toBe(`\`${JSON.stringify(refusal.body)}\``)
  })

  it.each(Object.entries(CloseCode))("close code %s = %s", (name, code) => {
    const row = rows.find((cells) => cells[0] === `\`${code}\``)
    expect(row, `a row for ${code}`).toBeDefined()
    expect(row?.[1]).toBe(`\`${name}\``)
  })

  it.each(Object.entries(LiveClientDefaults))("LiveClientDefaults.%s = %s", (name, value) => {
    const [, cell] = rowNaming(`LiveClientDefaults.${name}`)
    expectValue(cell, written(name, value))
  })

  /** The rows of the table under the page's `### \`type\`` heading, by field name. */
  const fieldsOf = (type: string) => {
    const start = page.indexOf(`### \`${type}\``)
    const section = page.slice(start, page.indexOf("\n### ", start + 1))
    return section
      .split("\n")
      .filter((line) => line.startsWith("| `"))
      .map((line) => line.slice(1).split("|")[0]!.trim().replace(/`/g, ""))
  }

  it.each([
    ["hello", Hello],
    ["permissions", PermissionsChanged]
  ] as const)("the %s frame: every field the schema has is in the page's table, and no other", (type, schema) => {
    const fields = Object.keys(schema.fields).filter((field) => field !== "type")
    expect(fieldsOf(type).sort()).toEqual(fields.sort())
  })

  it("MAX_SOCKETS_PER_USER defaults to LiveLimits.socketsPerUser", () => {
    const socketsPerUser = Effect.runSync(
      Effect.withConfigProvider(Settings.maxSocketsPerUser, ConfigProvider.fromMap(new Map()))
    )
    expect(socketsPerUser).toBe(LiveLimits.socketsPerUser)
  })
})
