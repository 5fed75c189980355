import { Effect, Layer, Logger } from "effect"
import { Settings } from "./Settings.ts"

/** LOG_FORMAT picks JSON lines (for collectors) or pretty lines (for people); LOG_LEVEL the minimum. */
export const LoggingLive = Layer.unwrapEffect(
  Effect.gen(function* () {
    const format = yield* Settings.logFormat
    const level = yield* Settings.logLevel
    return Layer.merge(format === "json" ? Logger.json : Logger.pretty, Logger.minimumLogLevel(level))
  })
)
