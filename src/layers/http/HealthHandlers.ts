/** Liveness and readiness on both doors. */
import { Effect } from "effect"
import { NotReady } from "../../rpc/Errors.ts"
import { HealthApi, HealthReport, Liveness } from "../../rpc/Health.ts"
import { Readiness } from "../../services/Readiness.ts"
import { implement } from "./Implement.ts"

const live = Effect.succeed(new Liveness({ status: "ok" }))

export const HealthHandlers = implement(
  HealthApi,
  Effect.map(Readiness, (readiness) => ({
    live: () => live,
    ready: () =>
      Effect.flatMap(readiness.check, ({ ready, checks }) => {
        if (ready) return Effect.succeed(new HealthReport({ status: "ready", checks }))
        const down = Object.entries(checks)
          .filter(([, status]) => status === "down")
          .map(([name]) => name)
        return Effect.fail(new NotReady({ status: "not_ready", checks, message: `down: ${down.join(", ")}` }))
      })
  }))
)
