import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect } from "effect"
import { DatabaseLive, runMigrations } from "./layers/Database.ts"
import { LoggingLive } from "./layers/Logging.ts"
import { startupFailureLine } from "./layers/Startup.ts"

runMigrations.pipe(
  Effect.provide(DatabaseLive),
  Effect.provide(LoggingLive),
  Effect.tapErrorCause((cause) => Effect.sync(() => console.error(startupFailureLine(cause)))),
  NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
)
