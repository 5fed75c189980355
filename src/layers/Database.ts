import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { join, resolve } from "node:path"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { PgClient, PgMigrator } from "@effect/sql-pg"
import { PGlite } from "@electric-sql/pglite"
import { PGLiteSocketServer } from "@electric-sql/pglite-socket"
import { Data, Duration, Effect, Layer, Option, String as Str } from "effect"
import { migrations } from "../../migrations/index.ts"
import { Settings } from "./Settings.ts"

export class DatabaseStartError extends Data.TaggedError("DatabaseStartError")<{ readonly message: string }> {}

const POOL_SIZE = 10
/**
 * PGlite is one Postgres session. pglite-socket interleaves the protocol messages of several
 * connections into it, which under concurrent queries mixes up unnamed prepared statements and
 * returns wrong or empty results; one connection keeps every query whole (they run one at a time
 * in PGlite anyway).
 */
const EMBEDDED_POOL_SIZE = 1

const clientOptions = {
  connectTimeout: Duration.seconds(5),
  transformResultNames: Str.snakeToCamel,
  transformQueryNames: Str.camelToSnake
} as const

const freePort = Effect.async<number, DatabaseStartError>((resume) => {
  const server = createServer()
  server.once("error", (cause) => resume(Effect.fail(new DatabaseStartError({ message: String(cause) }))))
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

const isRunning = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** PGlite has no lock of its own: two processes on one data directory would corrupt it. */
const lockDirectory = (dir: string) => {
  const path = join(dir, "..", "pglite.lock")
  return Effect.acquireRelease(
    Effect.try({
      try: () => {
        try {
          writeFileSync(path, String(process.pid), { flag: "wx" })
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error
          const holder = Number(readFileSync(path, "utf8"))
          if (Number.isInteger(holder) && holder !== process.pid && isRunning(holder)) {
            throw new Error(`${dir} is in use by process ${holder}; stop it or use another DATA_DIR`)
          }
          writeFileSync(path, String(process.pid))
        }
      },
      catch: (cause) => new DatabaseStartError({ message: cause instanceof Error ? cause.message : String(cause) })
    }),
    () => Effect.sync(() => rmSync(path, { force: true }))
  )
}

/**
 * PGlite (Postgres compiled to WASM) with its data in DATA_DIR/pglite, served on a loopback port
 * by pglite-socket so the same PgClient as in production talks to it. Single node only.
 */
const embedded = Effect.gen(function* () {
  const dir = resolve(yield* Settings.dataDir, "pglite")
  mkdirSync(dir, { recursive: true })
  yield* lockDirectory(dir)
  const db = yield* Effect.acquireRelease(
    Effect.tryPromise({
      // Postgres's default 128 MB of shared buffers doubles the process's memory; an embedded
      // single node's data fits in far less.
      try: () => PGlite.create(dir, { startParams: [...PGlite.defaultStartParams, "-c", "shared_buffers=16MB"] }),
      catch: (cause) => new DatabaseStartError({ message: `cannot open embedded database in ${dir}: ${cause}` })
    }),
    (db) => Effect.promise(() => db.close()).pipe(Effect.ignore)
  )
  const port = yield* freePort
  yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port, maxConnections: EMBEDDED_POOL_SIZE + 1 })
        await server.start()
        return server
      },
      catch: (cause) => new DatabaseStartError({ message: `cannot serve embedded database: ${cause}` })
    }),
    (server) => Effect.promise(() => server.stop()).pipe(Effect.ignore)
  )
  yield* Effect.logInfo(`database: embedded PGlite in ${dir}`)
  return PgClient.layer({
    ...clientOptions,
    host: "127.0.0.1",
    port,
    username: "postgres",
    database: "postgres",
    maxConnections: EMBEDDED_POOL_SIZE
  })
})

/** Postgres from DATABASE_URL, or the embedded PGlite when it is not set. */
export const DatabaseLive = Layer.unwrapScoped(
  Effect.gen(function* () {
    const url = yield* Settings.databaseUrl
    if (Option.isNone(url)) return yield* embedded
    yield* Effect.logInfo("database: postgres from DATABASE_URL")
    return PgClient.layer({ ...clientOptions, url: url.value, maxConnections: POOL_SIZE })
  })
)

/** Applies pending migrations in order; a no-op when all are applied. */
export const runMigrations = PgMigrator.run({ loader: PgMigrator.fromRecord(migrations) }).pipe(
  Effect.tap((applied) =>
    applied.length === 0
      ? Effect.logInfo("migrations: up to date")
      : Effect.logInfo(`migrations: applied ${applied.map(([id, name]) => `${id}_${name}`).join(", ")}`)
  ),
  Effect.provide(NodeContext.layer)
)

export const MigrationsLive = Layer.effectDiscard(runMigrations)
