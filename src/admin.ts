/**
 * The operator's command line:
 *
 *   yarn admin grant <email>    makes the user a platform administrator
 *   yarn admin revoke <email>   stops it
 *   yarn admin restore-owner <organization-id> <email>
 *                               makes the user an owner of the organization again: a member, holding
 *                               the owner role with no expiry and no role carrying a deny (S45)
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
import { OutboxLive } from "./layers/events/OutboxLive.ts"
import { restoreOwner } from "./layers/rbac/RestoreOwner.ts"
import { AuditLog } from "./services/AuditLog.ts"
import { Outbox } from "./services/Outbox.ts"

class CommandFailed extends Data.TaggedError("CommandFailed")<{
  readonly message: string
  readonly exitCode: number
}> {}

const USAGE = "usage: yarn admin grant|revoke <email> | yarn admin restore-owner <organization-id> <email>"

type Command =
  | { readonly _tag: "platformAdmin"; readonly grant: boolean; readonly email: string }
  | { readonly _tag: "restoreOwner"; readonly organizationId: string; readonly email: string }

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

const parse = (args: ReadonlyArray<string>): Effect.Effect<Command, CommandFailed> => {
  const [command, first, second, ...rest] = args
  if ((command === "grant" || command === "revoke") && first !== undefined && first !== "" && second === undefined) {
    return Effect.succeed({ _tag: "platformAdmin", grant: command === "grant", email: first })
  }
  if (command === "restore-owner" && first !== undefined && UUID.test(first) && second !== undefined && second !== "") {
    if (rest.length === 0)
      return Effect.succeed({ _tag: "restoreOwner", organizationId: first.toLowerCase(), email: second })
  }
  return Effect.fail(new CommandFailed({ message: USAGE, exitCode: 2 }))
}

const requireSchema = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const [schema] = yield* sql<{ ready: boolean }>`SELECT to_regclass('public.users') IS NOT NULL AS ready`
  if (schema?.ready !== true) {
    return yield* new CommandFailed({
      message: "the database has no schema yet: start the server once (or run yarn migrate), then try again",
      exitCode: 1
    })
  }
})

const setPlatformAdmin = (grant: boolean, email: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const audit = yield* AuditLog
    yield* requireSchema
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

/** The owner restored, audited with no actor; the running servers' outbox relays publish its events. */
const restoreOwnerBy = (organizationId: string, email: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const deps = { sql, outbox: yield* Outbox, audit: yield* AuditLog }
    yield* requireSchema
    const [user] = yield* sql<{ id: string; email: string }>`
      SELECT id::text AS id, email FROM users WHERE lower(email) = lower(${email})`
    if (user === undefined) return yield* new CommandFailed({ message: `no user with the email ${email}`, exitCode: 1 })
    const restored = yield* restoreOwner(deps, { actorId: null, organizationId, userId: user.id }).pipe(
      Effect.catchTag("NotFound", (error) => new CommandFailed({ message: error.message, exitCode: 1 }))
    )
    yield* Console.log(
      restored.changed
        ? `${user.email} is an owner of ${organizationId} again (revision ${restored.revision}, ` +
            `${restored.removedAssignments} deny-carrying assignment(s) taken away)`
        : `${user.email} already is an owner of ${organizationId}: nothing changed`
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

Effect.flatMap(parse(process.argv.slice(2)), (command) =>
  (command._tag === "platformAdmin"
    ? setPlatformAdmin(command.grant, command.email)
    : restoreOwnerBy(command.organizationId, command.email)
  ).pipe(Effect.provide(Layer.merge(AuditLogLive, OutboxLive).pipe(Layer.provideMerge(DatabaseLive))))
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
