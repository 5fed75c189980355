import { HttpApiBuilder } from "@effect/platform"
import { Api } from "./Api.ts"
import { AdminRpcs } from "./Admin.ts"
import { AuditRpcs } from "./Audit.ts"

export const AdminHttpLive = HttpApiBuilder.group(Api, "admin", (handlers) => handlers)
export const AdminRpcLive = AdminRpcs.toLayer({})

export const AuditHttpLive = HttpApiBuilder.group(Api, "audit", (handlers) => handlers)
export const AuditRpcLive = AuditRpcs.toLayer({})
