/** Roles and permissions (being built: endpoints are added to these groups). */
import { HttpApiGroup, OpenApi } from "@effect/platform"
import { RpcGroup } from "@effect/rpc"
import { OrgAuthorization, RpcOrgAuthorization } from "./Security.ts"

export class RolesApi extends HttpApiGroup.make("roles")
  .middleware(OrgAuthorization)
  .annotate(OpenApi.Title, "Roles and permissions") {}

export class RolesRpcs extends RpcGroup.make().middleware(RpcOrgAuthorization) {}
