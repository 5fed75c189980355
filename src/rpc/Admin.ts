/** Platform administration (being built: endpoints are added to these groups). */
import { HttpApiGroup, OpenApi } from "@effect/platform"
import { RpcGroup } from "@effect/rpc"
import { PlatformAdmin, RpcPlatformAdmin } from "./Security.ts"

export class AdminApi extends HttpApiGroup.make("admin")
  .middleware(PlatformAdmin)
  .annotate(OpenApi.Title, "Platform administration") {}

export class AdminRpcs extends RpcGroup.make().middleware(RpcPlatformAdmin) {}
