/** Thin adapters from both doors to the Admin service (platform administrators) and the audit log. */
import { HttpApiBuilder } from "@effect/platform"
import { Effect } from "effect"
import { AdminRpcs } from "../../rpc/Admin.ts"
import { Api } from "../../rpc/Api.ts"
import { AuditRpcs } from "../../rpc/Audit.ts"
import { CurrentMember, CurrentUser } from "../../rpc/Security.ts"
import { Admin } from "../../services/Admin.ts"
import { AuditLog } from "../../services/AuditLog.ts"
import { httpMeta as meta, withRevisionHeader } from "./HandlerSupport.ts"
import { requestMeta } from "./RequestMeta.ts"

export const AdminHttpLive = HttpApiBuilder.group(Api, "admin", (handlers) =>
  Effect.map(Admin, (admin) =>
    handlers
      .handle("listOrganizations", ({ urlParams }) => admin.listOrganizations(urlParams))
      .handle("freeze", ({ path }) =>
        Effect.all([CurrentUser, meta]).pipe(
          Effect.flatMap(([user, m]) => admin.freeze(user, path.org, m)),
          Effect.flatMap(withRevisionHeader)
        )
      )
      .handle("unfreeze", ({ path }) =>
        Effect.all([CurrentUser, meta]).pipe(
          Effect.flatMap(([user, m]) => admin.unfreeze(user, path.org, m)),
          Effect.flatMap(withRevisionHeader)
        )
      )
      .handle("disableUser", ({ path }) =>
        Effect.all([CurrentUser, meta]).pipe(Effect.flatMap(([user, m]) => admin.disableUser(user, path.userId, m)))
      )
      .handle("enableUser", ({ path }) =>
        Effect.all([CurrentUser, meta]).pipe(Effect.flatMap(([user, m]) => admin.enableUser(user, path.userId, m)))
      )
  )
)

export const AdminRpcLive = AdminRpcs.toLayer(
  Effect.map(Admin, (admin) =>
    AdminRpcs.of({
      "admin.listOrganizations": (filter) => admin.listOrganizations(filter),
      "admin.freeze": ({ organizationId }, { headers }) =>
        Effect.flatMap(CurrentUser, (user) => admin.freeze(user, organizationId, requestMeta(headers))),
      "admin.unfreeze": ({ organizationId }, { headers }) =>
        Effect.flatMap(CurrentUser, (user) => admin.unfreeze(user, organizationId, requestMeta(headers))),
      "admin.disableUser": ({ userId }, { headers }) =>
        Effect.flatMap(CurrentUser, (user) => admin.disableUser(user, userId, requestMeta(headers))),
      "admin.enableUser": ({ userId }, { headers }) =>
        Effect.flatMap(CurrentUser, (user) => admin.enableUser(user, userId, requestMeta(headers)))
    })
  )
)

export const AuditHttpLive = HttpApiBuilder.group(Api, "audit", (handlers) =>
  Effect.map(AuditLog, (audit) =>
    handlers.handle("list", ({ urlParams }) => Effect.flatMap(CurrentMember, (member) => audit.list(member, urlParams)))
  )
)

export const AuditRpcLive = AuditRpcs.toLayer(
  Effect.map(AuditLog, (audit) =>
    AuditRpcs.of({
      // The organization is the one the guard checked (CurrentMember), never read from the payload here.
      "audit.list": ({ organizationId: _, ...filter }) =>
        Effect.flatMap(CurrentMember, (member) => audit.list(member, filter))
    })
  )
)
