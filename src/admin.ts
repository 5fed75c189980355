/**
 * The operator's command line:
 *
 *   yarn admin grant <email>    makes the user a platform administrator
 *   yarn admin revoke <email>   stops it
 *
 * It uses the server's database settings: DATABASE_URL, or the embedded PGlite under DATA_DIR,
 * which one process opens at a time (stop the server first). It prints one line; it exits 1 when
 * the change could not be made, 2 on a usage error. Each change is audited with no actor.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { SqlClient } from "@effect/sql"
import { Cause, Console, Data, Effect, Exit, Layer, Logger, LogLevel, Option } from "effect"
import { AuditLogLive } from "./layers/AuditLogLive.ts"
import { DatabaseLive } from "./layers/Database.ts"
import { AuditLog } from "./services/AuditLog.ts"

class CommandFailed extends Data.TaggedError("CommandFailed")<{
  readonly message: string
  readonly exitCode: number
}> {}

const USAGE = "usage: yarn admin grant|revoke <email>"

const parse = (args: ReadonlyArray<string>) => {
  const [command, email, ...rest] = args
  if ((command !== "grant" && command !== "revoke") || email === undefined || email === "" || rest.length > 0) {
    return Effect.fail(new CommandFailed({ message: USAGE, exitCode: 2 }))
  }
  return Effect.succeed({ grant: command === "grant", email })
}

const setPlatformAdmin = (grant: boolean, email: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const audit = yield* AuditLog
    const [schema] = yield* sql<{ ready: boolean }>`SELECT to_regclass('public.users') IS NOT NULL AS ready`
    if (schema?.ready !== true) {
      return yield* new CommandFailed({
        message: "the database has no schema yet: start the server once (or run yarn migrate), then try again",
        exitCode: 1
      })
    }
    const user = yield* Effect.gen(function* () {
      const [row] = yield* sql<{ id: string; email: string }>`
        UPDATE users SET is_platform_admin = ${grant}, updated_at = now()
        WHERE lower(email) = lower(${email}) RETURNING id, email`
      if (row === undefined) return undefined
      yield* audit.record({
        action: grant ? "admin.granted" : "admin.revoked",
        actorId: null,
        target: `user:${row.id}`,
        data: { email: row.email }
      })
      return row
    }).pipe(sql.withTransaction)
    if (user === undefined) return yield* new CommandFailed({ message: `no user with the email ${email}`, exitCode: 1 })
    yield* Console.log(
      grant ? `${user.email} is now a platform administrator` : `${user.email} is no longer a platform administrator`
    )
  })

/** One line for whatever went wrong: ours as written, anything else by its message. */
const failureLine = (cause: Cause.Cause<unknown>) => {
  const error = Option.getOrUndefined(Cause.failureOption(cause)) ?? Option.getOrUndefined(Cause.dieOption(cause))
  if (error instanceof CommandFailed) return error.message
  const message =
    typeof error === "object" && error !== null && "message" in error ? String(error.message) : String(error)
  return `cannot open the database: ${message.split("\n")[0]}`
}

const exitCodeOf = (cause: Cause.Cause<unknown>) =>
  Option.match(Cause.failureOption(cause), {
    onSome: (error) => (error instanceof CommandFailed ? error.exitCode : 1),
    onNone: () => 1
  })

Effect.flatMap(parse(process.argv.slice(2)), ({ grant, email }) =>
  setPlatformAdmin(grant, email).pipe(Effect.provide(AuditLogLive.pipe(Layer.provideMerge(DatabaseLive))))
).pipe(
  // The database layer's start-up lines would break the one-line answer; errors still show.
  Logger.withMinimumLogLevel(LogLevel.Error),
  Effect.tapErrorCause((cause) => Console.error(`admin: ${failureLine(cause)}`)),
  NodeRuntime.runMain({
    disableErrorReporting: true,
    disablePrettyLogger: true,
    teardown: (exit, onExit) => onExit(Exit.isSuccess(exit) ? 0 : exitCodeOf(exit.cause))
  })
)
