import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { spawnServer, startServer } from "./support/ServerProcess.ts"
import { freePort } from "./support/Servers.ts"

const run = async (env: Record<string, string>) => {
  const server = spawnServer(env)
  const code = await server.exited
  return { code, lines: server.output().trim().split("\n") }
}

describe("a bad setting stops the server with exit code 1 and one line naming it", () => {
  it.concurrent.each([
    [{ PORT: "abc" }, "PORT"],
    [{ WS_PORT: "70000" }, "WS_PORT"],
    [{ LOG_FORMAT: "xml" }, "LOG_FORMAT"],
    [{ LOG_LEVEL: "loud" }, "LOG_LEVEL"],
    [{ DATABASE_URL: "mysql://localhost/db" }, "DATABASE_URL"],
    [{ REDIS_URL: "not a url" }, "REDIS_URL"],
    [{ ALLOWED_ORIGINS: "https://app.example.com/path" }, "ALLOWED_ORIGINS"],
    [{ TRUST_PROXY: "sometimes" }, "TRUST_PROXY"],
    [{ PUBLIC_URL: "ftp://example.com" }, "PUBLIC_URL"]
  ])("%o", async (env, name) => {
    const { code, lines } = await run(env)
    expect(code).toBe(1)
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(new RegExp(`^cannot start: invalid setting ${name}: `))
    expect(lines[0]).not.toMatch(/\bat .*\(.*:\d+:\d+\)/)
  })

  it("says what is wrong, not only where", async () => {
    const { lines } = await run({ PORT: "abc" })
    expect(lines[0]).toContain("integer")
  })
})

describe(".env.example", () => {
  it("documents every setting the server reads", () => {
    const settings = readFileSync(new URL("../src/layers/Settings.ts", import.meta.url), "utf8")
    const names = [...settings.matchAll(/\(\s*"([A-Z][A-Z0-9_]+)"/g)].map((match) => match[1])
    expect(names.length).toBeGreaterThan(10)
    const example = readFileSync(new URL("../.env.example", import.meta.url), "utf8")
    const documented = [...example.matchAll(/^#?\s*([A-Z][A-Z0-9_]+)=/gm)].map((match) => match[1])
    expect(documented).toEqual(expect.arrayContaining(names))
  })
})

describe("the server refuses to start on a platform it cannot serve well", () => {
  it("refuses the pure-JS fallback of uWebSockets.js, naming the reason", async () => {
    const { code, lines } = await run({ UWS_USE_FALLBACK: "1" })
    expect(code).toBe(1)
    expect(lines.at(-1)).toMatch(/^cannot start: .*pure-JS fallback, not the native binary/)
  })

  it("refuses an embedded data directory that another running server holds", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "lps-lock-"))
    const first = await startServer({ DATA_DIR: dataDir }, { timeoutMs: 90_000 })
    try {
      const [port, wsPort] = [await freePort(), await freePort()]
      const { code, lines } = await run({ DATA_DIR: dataDir, PORT: String(port), WS_PORT: String(wsPort) })
      expect(code).toBe(1)
      expect(lines.at(-1)).toMatch(/^cannot start: .*pglite is in use by process \d+/)
    } finally {
      expect(await first.stop()).toBe(0)
      rmSync(dataDir, { recursive: true, force: true })
    }
  }, 120_000)
})
