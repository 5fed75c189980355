import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ConfigProvider, Effect, Exit, Option } from "effect"
import { describe, expect, it } from "vitest"
import { Settings, validateAll } from "../src/layers/Settings.ts"
import { startupFailureLine } from "../src/layers/Startup.ts"
import { spawnServer, startServer } from "./support/ServerProcess.ts"
import { freePort } from "./support/Servers.ts"

/** Spawns the real server (bounded: these run one at a time) and collects what it printed. */
const run = async (env: Record<string, string>, options: { cwd?: string } = {}) => {
  const server = spawnServer(env, options)
  const code = await server.exited
  return { code, lines: server.output().trim().split("\n") }
}

/** The line the server prints when `validateAll` fails on these settings, decided in process. */
const failureLine = (env: Record<string, string>) =>
  Effect.runSync(
    Effect.exit(validateAll.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))))
  )

describe("a bad setting stops the server with one line naming it", () => {
  it.each([
    [{ PORT: "abc" }, "PORT"],
    [{ WS_PORT: "70000" }, "WS_PORT"],
    [{ LOG_FORMAT: "xml" }, "LOG_FORMAT"],
    [{ LOG_LEVEL: "loud" }, "LOG_LEVEL"],
    [{ DATABASE_URL: "mysql://localhost/db" }, "DATABASE_URL"],
    [{ REDIS_URL: "not a url" }, "REDIS_URL"],
    [{ ALLOWED_ORIGINS: "https://app.example.com/path" }, "ALLOWED_ORIGINS"],
    [{ TRUST_PROXY: "sometimes" }, "TRUST_PROXY"],
    [{ PUBLIC_URL: "ftp://example.com" }, "PUBLIC_URL"],
    // A cluster (REDIS_URL) needs one issuer for all its nodes: no default from each node's PUBLIC_URL.
    [{ REDIS_URL: "redis://localhost:6379", PUBLIC_URL: "https://node-a.example.com" }, "JWT_ISSUER"],
    [{ DOCS_ENABLED: "sometimes" }, "DOCS_ENABLED"],
    [{ REQUIRE_VERIFIED_EMAIL: "maybe" }, "REQUIRE_VERIFIED_EMAIL"]
  ])("%o", (env, name) => {
    const exit = failureLine(env)
    expect(Exit.isFailure(exit)).toBe(true)
    if (Exit.isSuccess(exit)) return
    const line = startupFailureLine(exit.cause)
    expect(line.split("\n")).toHaveLength(1)
    expect(line).toMatch(new RegExp(`^cannot start: invalid setting ${name}: `))
  })

  it("exits 1 with that one line and no stack trace, from the real process", async () => {
    for (const [env, name, says] of [
      [{ PORT: "abc" }, "PORT", "integer"],
      [{ PUBLIC_URL: "ftp://example.com" }, "PUBLIC_URL", "http(s) URL"],
      [{ REDIS_URL: "redis://127.0.0.1:1", DATABASE_URL: "postgres://127.0.0.1:1/none" }, "JWT_ISSUER", "REDIS_URL"]
    ] as const) {
      const { code, lines } = await run(env)
      expect(code).toBe(1)
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(new RegExp(`^cannot start: invalid setting ${name}: `))
      expect(lines[0]).toContain(says)
      expect(lines[0]).not.toMatch(/\bat .*\(.*:\d+:\d+\)/)
    }
  }, 120_000)
})

describe("settings", () => {
  const read = <A>(config: Effect.Effect<A, unknown>, env: Record<string, string>) =>
    Effect.runSync(config.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))))

  it("PUBLIC_URL follows PORT unless it is set", () => {
    expect(read(Settings.publicUrl, {})).toBe("http://localhost:3000")
    expect(read(Settings.publicUrl, { PORT: "4100" })).toBe("http://localhost:4100")
    expect(read(Settings.publicUrl, { PORT: "4100", PUBLIC_URL: "https://api.example.com/" })).toBe(
      "https://api.example.com"
    )
  })

  it("the token issuer does not follow PORT: nodes of one cluster on other ports accept each other's tokens", () => {
    expect(read(Settings.jwtIssuer, { PORT: "4100" })).toEqual(Option.some("http://localhost:3000"))
    expect(read(Settings.jwtIssuer, { PORT: "4100", PUBLIC_URL: "https://api.example.com" })).toEqual(
      Option.some("https://api.example.com")
    )
    expect(
      read(Settings.jwtIssuer, { PUBLIC_URL: "https://api.example.com", JWT_ISSUER: "https://id.example.com" })
    ).toEqual(Option.some("https://id.example.com"))
  })

  it("with REDIS_URL, the issuer must be set; set, it is what every node uses", () => {
    const cluster = { REDIS_URL: "redis://localhost:6379", PUBLIC_URL: "https://node-a.example.com" }
    expect(Exit.isFailure(failureLine(cluster))).toBe(true)
    expect(read(Settings.jwtIssuer, { ...cluster, JWT_ISSUER: "https://api.example.com" })).toEqual(
      Option.some("https://api.example.com")
    )
  })

  it("NODE_ENV=production hides /docs and requires verified emails, unless set otherwise (S52)", () => {
    expect(read(Settings.docsEnabled, {})).toBe(true)
    expect(read(Settings.requireVerifiedEmail, {})).toBe(false)
    expect(read(Settings.docsEnabled, { NODE_ENV: "production" })).toBe(false)
    expect(read(Settings.requireVerifiedEmail, { NODE_ENV: "production" })).toBe(true)
    expect(read(Settings.docsEnabled, { NODE_ENV: "production", DOCS_ENABLED: "true" })).toBe(true)
    expect(read(Settings.requireVerifiedEmail, { NODE_ENV: "production", REQUIRE_VERIFIED_EMAIL: "false" })).toBe(false)
    expect(read(Settings.requireVerifiedEmail, { REQUIRE_VERIFIED_EMAIL: "true" })).toBe(true)
  })

  it("reads a .env in the working directory, under what the environment sets", async () => {
    const dir = mkdtempSync(join(tmpdir(), "lps-dotenv-"))
    try {
      writeFileSync(join(dir, ".env"), "LOG_FORMAT=xml\nPORT=abc\n")
      // The environment's PORT wins over the file's; the file's bad LOG_FORMAT is what stops the server.
      const { code, lines } = await run({ PORT: String(await freePort()) }, { cwd: dir })
      expect(code).toBe(1)
      expect(lines.at(-1)).toMatch(/^cannot start: invalid setting LOG_FORMAT: /)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)
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
  }, 60_000)

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
