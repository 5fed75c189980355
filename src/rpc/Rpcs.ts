/** The RPC API: every group of Api.ts as Rpcs, one group served at POST /rpc, used by `client.ts`. */
import { AdminRpcs } from "./Admin.ts"
import { AuditRpcs } from "./Audit.ts"
import { AuthRpcs } from "./Auth.ts"
import { AuthzRpcs } from "./Authz.ts"
import { HealthRpcs } from "./Health.ts"
import { InvitationsRpcs } from "./Invitations.ts"
import { AssignmentsRpcs, MembersRpcs } from "./Members.ts"
import { OrgsRpcs } from "./Orgs.ts"
import { RealtimeRpcs } from "./Realtime.ts"
import { PermissionsRpcs, RolesRpcs } from "./Roles.ts"

export const Rpcs = HealthRpcs.merge(
  AuthRpcs,
  OrgsRpcs,
  InvitationsRpcs,
  MembersRpcs,
  AssignmentsRpcs,
  PermissionsRpcs,
  RolesRpcs,
  AuthzRpcs,
  AuditRpcs,
  AdminRpcs,
  RealtimeRpcs
)
