/** Invitations (being built: endpoints are added to these groups). */
import { HttpApiGroup, OpenApi } from "@effect/platform"
import { RpcGroup } from "@effect/rpc"
import { Authentication, RpcAuthentication } from "./Security.ts"

export class InvitationsApi extends HttpApiGroup.make("invitations")
  .middleware(Authentication)
  .annotate(OpenApi.Title, "Invitations") {}

export class InvitationsRpcs extends RpcGroup.make().middleware(RpcAuthentication) {}
