/**
 * What a browser bundle of the client modules holds: `client.ts` (the typed RPC client) and
 * `LiveClient.ts` bundle for the browser with esbuild, and no server module is inside.
 */
import { fileURLToPath } from "node:url"
import { build } from "esbuild"
import { describe, expect, it } from "vitest"

const root = fileURLToPath(new URL("../../", import.meta.url))

const SERVER = [
  /^src\/(layers|actors|services)\//,
  /node_modules\/(pg|pg-[a-z-]+|ioredis|uWebSockets\.js|nodemailer|@node-rs|@electric-sql)\//,
  /node_modules\/@effect\/(sql|sql-pg|platform-node|cluster|workflow)\//
]

const bundle = async (entry: string) => {
  const result = await build({
    entryPoints: [entry],
    absWorkingDir: root,
    bundle: true,
    platform: "browser",
    format: "esm",
    write: false,
    metafile: true,
    minify: true,
    logLevel: "silent"
  })
  return {
    inputs: Object.keys(result.metafile.inputs),
    bytes: result.outputFiles.reduce((sum, file) => sum + file.contents.byteLength, 0)
  }
}

describe("the client modules, bundled for a browser", () => {
  it.each(["src/rpc/client.ts", "src/rpc/LiveClient.ts"])("%s bundles with no server module inside", async (entry) => {
    const { inputs, bytes } = await bundle(entry)
    expect(inputs).toContain(entry)
    expect(inputs.filter((input) => SERVER.some((pattern) => pattern.test(input)))).toEqual([])
    expect(bytes).toBeGreaterThan(0)
  })
})
