import { type ChildProcess, spawn } from "node:child_process"
import { createRequire } from "node:module"
import { fileURLToPath, pathToFileURL } from "node:url"
import { freePort } from "./Servers.ts"

const root = fileURLToPath(new URL("../../", import.meta.url))
const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href
const main = fileURLToPath(new URL("../../src/main.ts", import.meta.url))

export interface ServerProcess {
  /** The server's process id, for reading its memory and descriptors from /proc. */
  readonly pid: number
  readonly url: string
  readonly wsUrl: string
  readonly output: () => string
  /** Sends the signal and resolves with the exit code. */
  readonly stop: (signal?: NodeJS.Signals) => Promise<number | null>
  readonly exited: Promise<number | null>
}

/** Runs `src/main.ts` as its own process, exactly as `yarn start` does, with only the given environment. */
export const spawnServer = (env: Record<string, string>, options: { cwd?: string } = {}) => {
  const child = spawn(process.execPath, ["--import", tsx, main], {
    cwd: options.cwd ?? root,
    env,
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout?.on("data", (chunk) => {
    output += chunk
  })
  child.stderr?.on("data", (chunk) => {
    output += chunk
  })
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  return { child, exited, output: () => output }
}

const waitForLive = async (url: string, exited: Promise<number | null>, output: () => string, timeoutMs: number) => {
  const deadline = Date.now() + timeoutMs
  let done = false
  exited.then(() => {
    done = true
  })
  while (Date.now() < deadline) {
    if (done) throw new Error(`server exited during start:\n${output()}`)
    try {
      const response = await fetch(`${url}/health/live`)
      if (response.ok) return
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`server did not answer /health/live within ${timeoutMs} ms:\n${output()}`)
}

export const startServer = async (
  env: Record<string, string>,
  options: { cwd?: string; port?: number; wsPort?: number; timeoutMs?: number } = {}
): Promise<ServerProcess> => {
  const port = options.port ?? (await freePort())
  const wsPort = options.wsPort ?? (await freePort())
  const fullEnv = options.port === undefined ? { PORT: String(port), WS_PORT: String(wsPort), ...env } : env
  const { child, exited, output } = spawnServer(fullEnv, options)
  const url = `http://127.0.0.1:${port}`
  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    return exited
  }
  try {
    await waitForLive(url, exited, output, options.timeoutMs ?? 60_000)
  } catch (error) {
    killQuietly(child)
    throw error
  }
  return { pid: child.pid!, url, wsUrl: `ws://127.0.0.1:${wsPort}/ws`, output, stop, exited }
}

const killQuietly = (child: ChildProcess) => {
  if (child.exitCode === null) child.kill("SIGKILL")
}
