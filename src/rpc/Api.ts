/** The REST API: every group, documented at /openapi.json and /docs. */
import { HttpApi, OpenApi } from "@effect/platform"
import { AdminApi } from "./Admin.ts"
import { AuditApi } from "./Audit.ts"
import { AuthApi, JwksApi, MeApi, SessionApi } from "./Auth.ts"
import { AuthzApi } from "./Authz.ts"
import { HealthApi } from "./Health.ts"
import { InvitationsApi } from "./Invitations.ts"
import { MembersApi } from "./Members.ts"
import { OrgApi, OrgsApi } from "./Orgs.ts"
import { RealtimeApi } from "./Realtime.ts"
import { RolesApi } from "./Roles.ts"

export class Api extends HttpApi.make("api")
  .add(HealthApi)
  .add(AuthApi)
  .add(SessionApi)
  .add(MeApi)
  .add(JwksApi)
  .add(OrgsApi)
  .add(OrgApi)
  .add(MembersApi)
  .add(InvitationsApi)
  .add(RolesApi)
  .add(AuthzApi)
  .add(AuditApi)
  .add(AdminApi)
  .add(RealtimeApi)
  .annotate(OpenApi.Title, "Live Permission Server")
  .annotate(OpenApi.Version, "0.1.0")
  .annotate(
    OpenApi.Description,
    "Authentication, multi-tenant RBAC and live permissions. Every operation here is also an RPC at " +
      "`POST /rpc` (NDJSON, @effect/rpc) with the same schemas and errors. Errors are JSON " +
      "`{ _tag, code, message }` with a stable `code`. Live sessions: a WebSocket on WS_PORT pushes each " +
      "session's permissions as they change; the protocol (messages, close codes, limits) is described in " +
      "docs/live-protocol.md in the repository."
  ) {}
