/** The RPC API: one group served at POST /rpc, used by `client.ts`. */
import { AdminRpcs } from "./Admin.ts"
import { AuditRpcs } from "./Audit.ts"
import { AuthRpcs, SessionRpcs } from "./Auth.ts"
import { AuthzRpcs } from "./Authz.ts"
import { HealthRpcs } from "./Health.ts"
import { InvitationsRpcs } from "./Invitations.ts"
import { MembersRpcs } from "./Members.ts"
import { OrgRpcs, OrgsRpcs } from "./Orgs.ts"
import { RealtimeRpcs } from "./Realtime.ts"
import { RolesRpcs } from "./Roles.ts"

export class Rpcs extends HealthRpcs.merge(
  AuthRpcs,
  SessionRpcs,
  OrgsRpcs,
  OrgRpcs,
  MembersRpcs,
  InvitationsRpcs,
  RolesRpcs,
  AuthzRpcs,
  AuditRpcs,
  AdminRpcs,
  RealtimeRpcs
) {}
