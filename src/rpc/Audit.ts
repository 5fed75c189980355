/** Audit log (being built: endpoints are added to these groups). */
import { HttpApiGroup, OpenApi } from "@effect/platform"
import { RpcGroup } from "@effect/rpc"
import { OrgAuthorization, RpcOrgAuthorization } from "./Security.ts"

export class AuditApi extends HttpApiGroup.make("audit")
  .middleware(OrgAuthorization)
  .annotate(OpenApi.Title, "Audit log") {}

export class AuditRpcs extends RpcGroup.make().middleware(RpcOrgAuthorization) {}
