import { SqlClient } from "@effect/sql"
import { Effect, Layer } from "effect"
import { EventStream } from "../services/EventStream.ts"
import { type CheckStatus, Readiness } from "../services/Readiness.ts"

const TIMEOUT = "1 second"

const status = <E, R>(name: string, probe: Effect.Effect<unknown, E, R>): Effect.Effect<CheckStatus, never, R> =>
  probe.pipe(
    Effect.timeoutFail({ duration: TIMEOUT, onTimeout: () => `no answer within ${TIMEOUT}` }),
    Effect.as("up" as const),
    Effect.catchAllCause((cause) => Effect.as(Effect.logWarning(`readiness: ${name} is down`, cause), "down" as const))
  )

export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const events = yield* EventStream
  return Readiness.of({
    check: Effect.all(
      { database: status("database", sql`SELECT 1`), events: status("events", events.ping) },
      {
        concurrency: "unbounded"
      }
    ).pipe(
      Effect.map((checks) => ({ ready: checks.database === "up" && checks.events === "up", checks })),
      Effect.withSpan("Readiness.check")
    )
  })
})

export const ReadinessLive = Layer.effect(Readiness, make)
