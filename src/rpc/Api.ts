/** The REST API: every group, documented at /openapi.json and /docs. */
import { HttpApi, OpenApi } from "@effect/platform"
import { AuthApi, JwksApi, MeApi, SessionApi } from "./Auth.ts"
import { HealthApi } from "./Health.ts"
import { OrgApi, OrgsApi } from "./Orgs.ts"

export class Api extends HttpApi.make("api")
  .add(HealthApi)
  .add(AuthApi)
  .add(SessionApi)
  .add(MeApi)
  .add(JwksApi)
  .add(OrgsApi)
  .add(OrgApi)
  .annotate(OpenApi.Title, "Live Permission Server")
  .annotate(OpenApi.Version, "0.1.0")
  .annotate(
    OpenApi.Description,
    "Authentication, multi-tenant RBAC and live permissions. Every operation here is also an RPC at " +
      "`POST /rpc` (NDJSON, @effect/rpc) with the same schemas and errors. Errors are JSON " +
      "`{ _tag, code, message }` with a stable `code`."
  ) {}
