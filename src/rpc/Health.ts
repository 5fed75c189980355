/** Liveness and readiness: the same contract as REST endpoints and as RPCs. */
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import { Schema } from "effect"
import { HealthChecks, NotReady } from "./Errors.ts"
import { operations, rpcsOf } from "./Operation.ts"

export class Liveness extends Schema.Class<Liveness>("Liveness")({ status: Schema.Literal("ok") }) {}

export class HealthReport extends Schema.Class<HealthReport>("HealthReport")({
  status: Schema.Literal("ready"),
  checks: HealthChecks
}) {}

const probe = operations({})

export class HealthApi extends HttpApiGroup.make("health")
  .add(probe.get("live", "/health/live", Liveness))
  .add(probe.get("ready", "/health/ready", HealthReport, { errors: [NotReady] }))
  .annotate(OpenApi.Title, "Health") {}

export const HealthRpcs = rpcsOf(HealthApi)
