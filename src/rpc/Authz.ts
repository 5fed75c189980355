/** Checks and explanations (being built: endpoints are added to these groups). */
import { HttpApiGroup, OpenApi } from "@effect/platform"
import { RpcGroup } from "@effect/rpc"
import { OrgAuthorization, RpcOrgAuthorization } from "./Security.ts"

export class AuthzApi extends HttpApiGroup.make("authz")
  .middleware(OrgAuthorization)
  .annotate(OpenApi.Title, "Checks and explanations") {}

export class AuthzRpcs extends RpcGroup.make().middleware(RpcOrgAuthorization) {}
