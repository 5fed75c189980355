import type * as Uws from "uWebSockets.js"
import { createRequire } from "node:module"
import { Data, Effect } from "effect"

export class UwsLoadError extends Data.TaggedError("UwsLoadError")<{ readonly message: string }> {}

const require = createRequire(import.meta.url)

/**
 * Loads uWebSockets.js and checks that its native binary loaded. The package quietly falls back to
 * a slow pure-JS implementation when the binary does not match this Node build; refuse that.
 */
export const loadUws = Effect.try({
  try: () => require("uWebSockets.js") as typeof Uws,
  catch: (cause) => new UwsLoadError({ message: `uWebSockets.js could not be loaded: ${cause}` })
}).pipe(
  Effect.filterOrFail(
    () => Object.keys(require.cache).some((path) => /uws_[a-z0-9]+_[a-z0-9]+_\d+\.node$/.test(path)),
    () =>
      new UwsLoadError({
        message:
          `uWebSockets.js loaded its pure-JS fallback, not the native binary (Node ${process.versions.node}, ` +
          `ABI ${process.versions.modules}, ${process.platform}-${process.arch}); use Node 20 on glibc Linux`
      })
  )
)
