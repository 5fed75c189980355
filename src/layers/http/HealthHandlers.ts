import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { Api } from "../../rpc/Api.ts"
import { NotReady } from "../../rpc/Errors.ts"
import { HealthReport, HealthRpcs, Liveness } from "../../rpc/Health.ts"
import { Readiness } from "../../services/Readiness.ts"

const live = Effect.succeed(new Liveness({ status: "ok" }))

const ready = Effect.flatMap(Readiness, (readiness) => readiness.check).pipe(
  Effect.flatMap(({ ready, checks }) => {
    if (ready) return Effect.succeed(new HealthReport({ status: "ready", checks }))
    const down = Object.entries(checks)
      .filter(([, status]) => status === "down")
      .map(([name]) => name)
    return Effect.fail(new NotReady({ status: "not_ready", checks, message: `down: ${down.join(", ")}` }))
  })
)

export const HealthHttpLive = HttpApiBuilder.group(Api, "health", (handlers) =>
  handlers.handle("live", () => live).handle("ready", () => ready)
)

export const HealthRpcLive = HealthRpcs.toLayer({
  "health.live": () => live,
  "health.ready": () => ready
})
