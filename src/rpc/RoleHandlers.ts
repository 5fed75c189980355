import { HttpApiBuilder } from "@effect/platform"
import { Api } from "./Api.ts"
import { RolesRpcs } from "./Roles.ts"

export const RolesHttpLive = HttpApiBuilder.group(Api, "roles", (handlers) => handlers)
export const RolesRpcLive = RolesRpcs.toLayer({})
