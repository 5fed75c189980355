/**
 * `yarn lint` enforces the direction of dependencies (domain ← rpc ← services ← actors, layers):
 * each import against it, placed in a scratch tree that uses the repository's biome.json, is
 * reported as an error naming the rule; imports along it are not.
 */
import { execFileSync } from "node:child_process"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, describe, expect, it } from "vitest"

const root = fileURLToPath(new URL("../../", import.meta.url))
const biome = join(root, "node_modules/.bin/biome")

const against: ReadonlyArray<readonly [file: string, specifier: string]> = [
  ["src/domain/Probe.ts", "../rpc/Errors.ts"],
  ["src/domain/Probe.ts", "../services/SignIn.ts"],
  ["src/domain/Probe.ts", "../layers/Settings.ts"],
  ["src/domain/Probe.ts", "node:fs"],
  ["src/rpc/Probe.ts", "../services/SignIn.ts"],
  ["src/rpc/Probe.ts", "../actors/SessionActor.ts"],
  ["src/rpc/Probe.ts", "../layers/http/RequestMeta.ts"],
  ["src/rpc/Probe.ts", "ioredis"],
  ["src/rpc/Probe.ts", "pg"],
  ["src/rpc/Probe.ts", "uWebSockets.js"],
  ["src/rpc/Probe.ts", "@effect/sql"],
  ["src/services/Probe.ts", "../layers/Settings.ts"],
  ["src/services/Probe.ts", "../actors/SessionRegistry.ts"],
  ["src/services/Probe.ts", "ioredis"],
  ["src/actors/Probe.ts", "../layers/auth/RevocationsLive.ts"],
  ["src/actors/Probe.ts", "@effect/sql"]
]

const along: ReadonlyArray<readonly [file: string, specifier: string]> = [
  ["src/rpc/Probe.ts", "../domain/Decision.ts"],
  ["src/rpc/Probe.ts", "./Errors.ts"],
  ["src/services/Probe.ts", "../rpc/Errors.ts"],
  ["src/services/Probe.ts", "../domain/Decision.ts"],
  ["src/actors/Probe.ts", "../services/PermissionStore.ts"],
  ["src/actors/Probe.ts", "../rpc/LiveProtocol.ts"],
  ["src/layers/Probe.ts", "../actors/SessionRegistry.ts"],
  ["src/layers/Probe.ts", "@effect/sql"]
]

interface Report {
  readonly diagnostics: ReadonlyArray<{ readonly category: string; readonly location: { readonly path: string } }>
}

const scratch = mkdtempSync(join(tmpdir(), "lint-direction-"))
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

/** Lints one file holding one import in a scratch tree configured by the repository's biome.json. */
const lint = (file: string, specifier: string): ReadonlyArray<string> => {
  const dir = mkdtempSync(join(scratch, "case-"))
  const config = JSON.parse(readFileSync(join(root, "biome.json"), "utf8"))
  delete config.$schema
  writeFileSync(join(dir, "biome.json"), JSON.stringify(config))
  mkdirSync(dirname(join(dir, file)), { recursive: true })
  writeFileSync(join(dir, file), `import * as probe from "${specifier}"\n\nexport const used = probe\n`)
  let output: string
  try {
    output = execFileSync(biome, ["lint", "--reporter=json", "src"], { cwd: dir, encoding: "utf8", stdio: "pipe" })
  } catch (error) {
    output = (error as { stdout: string }).stdout
  }
  const report = JSON.parse(output.slice(output.indexOf("{"))) as Report
  return report.diagnostics.map((d) => d.category)
}

describe("the direction of dependencies, enforced by yarn lint", () => {
  it.each(against)("refuses %s importing %s", (file, specifier) => {
    expect(lint(file, specifier)).toContain("lint/style/noRestrictedImports")
  })

  it.each(along)("allows %s importing %s", (file, specifier) => {
    expect(lint(file, specifier)).not.toContain("lint/style/noRestrictedImports")
  })
})
