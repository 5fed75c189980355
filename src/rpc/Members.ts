/** Members and assignments (being built: endpoints are added to these groups). */
import { HttpApiGroup, OpenApi } from "@effect/platform"
import { RpcGroup } from "@effect/rpc"
import { OrgAuthorization, RpcOrgAuthorization } from "./Security.ts"

export class MembersApi extends HttpApiGroup.make("members")
  .middleware(OrgAuthorization)
  .annotate(OpenApi.Title, "Members and assignments") {}

export class MembersRpcs extends RpcGroup.make().middleware(RpcOrgAuthorization) {}
