import { execFile } from "node:child_process"
import { access, chown, constants, mkdir, mkdtemp, readdir, readFile, rm, unlink } from "node:fs/promises"
import { createConnection, createServer } from "node:net"
import { tmpdir } from "node:os"
import { delimiter, dirname, join } from "node:path"
import { setTimeout as sleep } from "node:timers/promises"

export interface PostgresServer {
  readonly url: string
  stop(): Promise<void>
}

export interface RedisServer {
  readonly url: string
  readonly port: number
  stop(): Promise<void>
  start(): Promise<void>
}

const isRoot = () => process.getuid?.() === 0

const run = (cmd: string, args: ReadonlyArray<string>, env?: NodeJS.ProcessEnv): Promise<string> =>
  new Promise((resolve, reject) => {
    execFile(cmd, args, { env: { ...process.env, ...env }, cwd: tmpdir() }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${cmd} ${args.join(" ")} failed: ${(stderr || error.message).trim()}`))
      else resolve(stdout)
    })
  })

const isExecutable = (file: string) =>
  access(file, constants.X_OK).then(
    () => true,
    () => false
  )

const which = async (name: string): Promise<string | undefined> => {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir && (await isExecutable(join(dir, name)))) return join(dir, name)
  }
  return undefined
}

const tail = async (file: string, lines = 30) => {
  const text = await readFile(file, "utf8").catch(() => "")
  return text.trimEnd().split("\n").slice(-lines).join("\n")
}

const waitFor = async (what: string, check: () => Promise<boolean>, timeoutMs = 15_000) => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(50)
  }
}

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address ? address.port : 0
      server.close(() => (port ? resolve(port) : reject(new Error("Could not read a free port"))))
    })
  })

const postgresBinDir = async (): Promise<string | undefined> => {
  const root = "/usr/lib/postgresql"
  const versions = await readdir(root).catch(() => [])
  const sorted = versions.filter((v) => /^\d+(\.\d+)?$/.test(v)).sort((a, b) => Number(b) - Number(a))
  for (const version of sorted) {
    const bin = join(root, version, "bin")
    if ((await isExecutable(join(bin, "initdb"))) && (await isExecutable(join(bin, "pg_ctl")))) return bin
  }
  const initdb = await which("initdb")
  return initdb && (await which("pg_ctl")) ? dirname(initdb) : undefined
}

const asPostgresUser = (cmd: string, args: ReadonlyArray<string>) =>
  isRoot() ? run("runuser", ["-u", "postgres", "--", cmd, ...args]) : run(cmd, args)

const postgresOwner = async () => {
  const [uid, gid] = await Promise.all([run("id", ["-u", "postgres"]), run("id", ["-g", "postgres"])])
  return { uid: Number(uid.trim()), gid: Number(gid.trim()) }
}

export const startPostgres = async (): Promise<PostgresServer> => {
  const bin = await postgresBinDir()
  if (!bin) throw new Error("PostgreSQL not found: apt-get install postgresql")
  const pgCtl = join(bin, "pg_ctl")
  const dir = await mkdtemp(join(tmpdir(), "pg-"))
  const log = join(dir, "log")
  const fail = async (error: unknown): Promise<never> => {
    const logTail = await tail(log)
    await rm(dir, { recursive: true, force: true })
    const message = error instanceof Error ? error.message : String(error)
    throw new Error(logTail ? `${message}\n--- postgres log ---\n${logTail}` : message)
  }
  try {
    if (isRoot()) {
      const { uid, gid } = await postgresOwner()
      await chown(dir, uid, gid)
    }
    await asPostgresUser(join(bin, "initdb"), [
      "-D",
      dir,
      "-A",
      "trust",
      "-U",
      "postgres",
      "--no-sync",
      "-E",
      "UTF8",
      "--locale=C"
    ])
  } catch (error) {
    return fail(error)
  }
  const port = await freePort()
  const options = [
    `-p ${port}`,
    `-k ${dir}`,
    "-c listen_addresses=127.0.0.1",
    "-c fsync=off",
    "-c synchronous_commit=off",
    "-c full_page_writes=off",
    "-c max_connections=300"
  ].join(" ")
  try {
    await asPostgresUser(pgCtl, ["-w", "-t", "60", "-D", dir, "-l", log, "-o", options, "start"])
  } catch (error) {
    await asPostgresUser(pgCtl, ["-D", dir, "-m", "immediate", "stop"]).catch(() => undefined)
    return fail(error)
  }
  let stopped = false
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    stop: async () => {
      if (stopped) return
      stopped = true
      await asPostgresUser(pgCtl, ["-w", "-D", dir, "-m", "immediate", "stop"]).catch(() => undefined)
      await rm(dir, { recursive: true, force: true })
    }
  }
}

export const redisPing = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port })
    let reply = ""
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(1_000, () => done(false))
    socket.once("error", () => done(false))
    socket.once("connect", () => socket.write("PING\r\n"))
    socket.on("data", (chunk) => {
      reply += chunk.toString("latin1")
      if (reply.includes("\r\n")) done(reply.startsWith("+PONG"))
    })
    socket.once("close", () => done(false))
  })

const portClosed = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = createConnection({ host: "127.0.0.1", port })
    socket.once("connect", () => {
      socket.destroy()
      resolve(false)
    })
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code === "ECONNREFUSED"))
  })

const readPid = async (file: string) => {
  const pid = Number((await readFile(file, "utf8").catch(() => "")).trim())
  return Number.isInteger(pid) && pid > 0 ? pid : undefined
}

const signal = (pid: number, name: NodeJS.Signals) => {
  try {
    process.kill(pid, name)
  } catch {}
}

export const startRedis = async (opts: { port?: number } = {}): Promise<RedisServer> => {
  const redisServer = await which("redis-server")
  if (!redisServer) throw new Error("redis-server not found: apt-get install redis-server")
  const port = opts.port ?? (await freePort())
  const dir = await mkdtemp(join(tmpdir(), "redis-"))
  const pidFile = join(dir, "redis.pid")
  const logFile = join(dir, "redis.log")

  const start = async () => {
    await mkdir(dir, { recursive: true })
    await run(redisServer, [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--daemonize",
      "yes",
      "--pidfile",
      pidFile,
      "--logfile",
      logFile,
      "--dir",
      dir
    ])
    try {
      await waitFor(`redis-server on port ${port}`, async () => {
        if (/aborting|fatal/i.test(await tail(logFile, 5))) throw new Error(`redis-server on port ${port} failed`)
        return (await readPid(pidFile)) !== undefined && (await redisPing(port))
      })
    } catch (error) {
      const logTail = await tail(logFile)
      const message = error instanceof Error ? error.message : String(error)
      throw new Error(logTail ? `${message}\n--- redis log ---\n${logTail}` : message)
    }
  }

  const kill = async () => {
    const pid = await readPid(pidFile)
    if (!pid) return
    signal(pid, "SIGTERM")
    try {
      await waitFor(`redis-server ${pid} to exit`, async () => (await readPid(pidFile)) === undefined, 10_000)
    } catch {
      signal(pid, "SIGKILL")
      await unlink(pidFile).catch(() => undefined)
    }
  }

  const stop = async () => {
    await kill()
    await waitFor(`port ${port} to close`, () => portClosed(port), 10_000)
    await rm(dir, { recursive: true, force: true })
  }

  try {
    await start()
  } catch (error) {
    await kill()
    await rm(dir, { recursive: true, force: true })
    throw error
  }
  return { url: `redis://127.0.0.1:${port}`, port, start, stop }
}

export interface Needed {
  readonly postgres?: boolean
  readonly redis?: boolean
}

const missingBinaries = async (need: Needed) => {
  const missing: Array<string> = []
  if (need.postgres && !(await postgresBinDir())) missing.push("postgresql")
  if (need.redis && !(await which("redis-server"))) missing.push("redis-server")
  return missing
}

export const ensureBinaries = async (need: Needed = { postgres: true, redis: true }): Promise<void> => {
  const missing = await missingBinaries(need)
  if (missing.length === 0) return
  if (isRoot() && (await which("apt-get"))) {
    console.log(`Installing ${missing.join(" and ")} with apt-get for the tests`)
    const env = { DEBIAN_FRONTEND: "noninteractive" }
    await run("apt-get", ["update", "-qq"], env)
    await run("apt-get", ["install", "-y", "-qq", ...missing], env)
    if ((await missingBinaries(need)).length === 0) return
  }
  throw new Error(
    `Tests need PostgreSQL and Redis: apt-get install ${missing.join(" ")}, or set TEST_DATABASE_URL and TEST_REDIS_URL`
  )
}
