/** Turns a failure to start into one line a person can act on: which setting, and what is wrong. */
import { Cause, ConfigError, Option } from "effect"

const configLine = (error: ConfigError.ConfigError): string => {
  switch (error._op) {
    case "And":
    case "Or":
      return configLine(error.left)
    case "InvalidData":
      return `invalid setting ${error.path.join("_")}: ${error.message}`
    case "MissingData":
      return `missing setting ${error.path.join("_")}: ${error.message}`
    case "SourceUnavailable":
      return `setting ${error.path.join("_")} could not be read: ${error.message}`
    case "Unsupported":
      return `unsupported setting ${error.path.join("_")}: ${error.message}`
  }
}

const messageOf = (error: unknown): string => {
  if (ConfigError.isConfigError(error)) return configLine(error)
  if (typeof error === "object" && error !== null && "message" in error && typeof error.message === "string") {
    const tag = "_tag" in error && typeof error._tag === "string" ? `${error._tag}: ` : ""
    return `${tag}${error.message}`.split("\n")[0]!
  }
  return String(error).split("\n")[0]!
}

export const startupFailureLine = (cause: Cause.Cause<unknown>): string =>
  Option.match(Cause.failureOption(cause), {
    onSome: (error) => `cannot start: ${messageOf(error)}`,
    onNone: () =>
      Option.match(Cause.dieOption(cause), {
        onSome: (defect) => `cannot start: ${messageOf(defect)}`,
        onNone: () => "cannot start: interrupted"
      })
  })
