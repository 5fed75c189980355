/** Platform administration and the audit log on both doors, from one implementation each. */
import { Effect } from "effect"
import { AdminApi } from "../../rpc/Admin.ts"
import { AuditApi } from "../../rpc/Audit.ts"
import { CurrentMember, CurrentUser } from "../../rpc/Security.ts"
import { Admin } from "../../services/Admin.ts"
import { AuditLog } from "../../services/AuditLog.ts"
import { implement } from "./Implement.ts"

export const AdminHandlers = implement(
  AdminApi,
  Effect.map(Admin, (admin) => ({
    listOrganizations: ({ status, cursor, limit }) => admin.listOrganizations({ status, cursor, limit }),
    freeze: ({ organizationId }, { meta }) =>
      Effect.flatMap(CurrentUser, (user) => admin.freeze(user, organizationId, meta)),
    unfreeze: ({ organizationId }, { meta }) =>
      Effect.flatMap(CurrentUser, (user) => admin.unfreeze(user, organizationId, meta)),
    disableUser: ({ userId }, { meta }) => Effect.flatMap(CurrentUser, (user) => admin.disableUser(user, userId, meta)),
    enableUser: ({ userId }, { meta }) => Effect.flatMap(CurrentUser, (user) => admin.enableUser(user, userId, meta)),
    restoreOwner: ({ organizationId, userId }, { meta }) =>
      Effect.flatMap(CurrentUser, (user) => admin.restoreOwner(user, organizationId, userId, meta))
  }))
)

export const AuditHandlers = implement(
  AuditApi,
  Effect.map(AuditLog, (audit) => ({
    // The organization is the one the guard checked (CurrentMember), never read from the input here.
    list: ({ organizationId: _, ...filter }) => Effect.flatMap(CurrentMember, (member) => audit.list(member, filter))
  }))
)
