import { HttpApiBuilder } from "@effect/platform"
import { Api } from "./Api.ts"
import { AuthzRpcs } from "./Authz.ts"

export const AuthzHttpLive = HttpApiBuilder.group(Api, "authz", (handlers) => handlers)
export const AuthzRpcLive = AuthzRpcs.toLayer({})
