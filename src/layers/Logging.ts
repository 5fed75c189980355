import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import { Context, Effect, FiberRef, FiberRefs, HashMap, Layer, Logger, Option } from "effect"
import { Settings } from "./Settings.ts"

/**
 * Every line logged while a request is served carries its request id: read from the request in the
 * fiber's context (the HTTP middleware writes a valid one into its `x-request-id` header) when the
 * line is written, rather than annotated on every request whether it logs or not.
 */
export const withRequestId = <Output>(logger: Logger.Logger<unknown, Output>) =>
  Logger.mapInputOptions(logger, (options) => {
    if (HashMap.has(options.annotations, "requestId")) return options
    const context = FiberRefs.getOrDefault(options.context, FiberRef.currentContext)
    const request = Context.getOption(context, HttpServerRequest.HttpServerRequest)
    const requestId = Option.isSome(request) ? request.value.headers["x-request-id"] : undefined
    return requestId === undefined
      ? options
      : { ...options, annotations: HashMap.set(options.annotations, "requestId", requestId as unknown) }
  })

/** LOG_FORMAT picks JSON lines (for collectors) or pretty lines (for people); LOG_LEVEL the minimum. */
export const LoggingLive = Layer.unwrapEffect(
  Effect.gen(function* () {
    const format = yield* Settings.logFormat
    const level = yield* Settings.logLevel
    const logger = withRequestId(format === "json" ? Logger.withConsoleLog(Logger.jsonLogger) : Logger.prettyLoggerDefault)
    return Layer.merge(Logger.replace(Logger.defaultLogger, logger), Logger.minimumLogLevel(level))
  })
)
