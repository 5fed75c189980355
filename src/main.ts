import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { LoggingLive } from "./layers/Logging.ts"
import { MainLive } from "./layers/Main.ts"
import { startupFailureLine } from "./layers/Startup.ts"

// No trace exporter is configured, so spans would only cost time on every request.
Layer.launch(MainLive).pipe(
  Effect.provide(Layer.merge(LoggingLive, Layer.setTracerEnabled(false))),
  Effect.tapErrorCause((cause) => Effect.sync(() => console.error(startupFailureLine(cause)))),
  NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
)
