import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { LoggingLive } from "./layers/Logging.ts"
import { MainLive } from "./layers/Main.ts"
import { startupFailureLine } from "./layers/Startup.ts"

Layer.launch(MainLive).pipe(
  Effect.provide(LoggingLive),
  Effect.tapErrorCause((cause) => Effect.sync(() => console.error(startupFailureLine(cause)))),
  NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
)
