/** Liveness and readiness: the same contract as REST endpoints and as RPCs. */
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { HealthChecks, NotReady } from "./Errors.ts"
import { rpcsOf } from "./Operation.ts"

export class Liveness extends Schema.Class<Liveness>("Liveness")({ status: Schema.Literal("ok") }) {}

export class HealthReport extends Schema.Class<HealthReport>("HealthReport")({
  status: Schema.Literal("ready"),
  checks: HealthChecks
}) {}

export class HealthApi extends HttpApiGroup.make("health")
  .add(
    HttpApiEndpoint.get("live", "/health/live")
      .addSuccess(Liveness)
      .annotate(OpenApi.Summary, "The process is running")
      .annotate(OpenApi.Description, "Answers while the process runs, whatever its dependencies do (a liveness probe).")
  )
  .add(
    HttpApiEndpoint.get("ready", "/health/ready")
      .addSuccess(HealthReport)
      .addError(NotReady)
      .annotate(OpenApi.Summary, "This node can serve traffic: its database and event stream answer")
      .annotate(
        OpenApi.Description,
        "200 when the database and the event stream answer, else 503 naming what is down (a readiness probe)."
      )
  )
  .annotate(OpenApi.Title, "Health") {}

export const HealthRpcs = rpcsOf(HealthApi)
