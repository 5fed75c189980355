import { existsSync } from "node:fs"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect, Layer } from "effect"
import { LoggingLive } from "./layers/Logging.ts"
import { MainLive } from "./layers/Main.ts"
import { startupFailureLine } from "./layers/Startup.ts"

// Settings come from the environment; a `.env` in the working directory fills in what it does not set.
if (existsSync(".env")) process.loadEnvFile(".env")

Layer.launch(MainLive).pipe(
  Effect.provide(LoggingLive),
  Effect.tapErrorCause((cause) => Effect.sync(() => console.error(startupFailureLine(cause)))),
  NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
)
