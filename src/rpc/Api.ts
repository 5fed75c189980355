/**
 * The API, declared once: every group of operations, served as REST (documented at /openapi.json
 * and /docs) and, through `rpcsOf`, as the RPCs at POST /rpc (Rpcs.ts).
 */
import * as HttpApi from "@effect/platform/HttpApi"
import * as OpenApi from "@effect/platform/OpenApi"
import { AdminApi } from "./Admin.ts"
import { AuditApi } from "./Audit.ts"
import { AuthApi } from "./Auth.ts"
import { AuthzApi } from "./Authz.ts"
import { HealthApi } from "./Health.ts"
import { InvitationsApi } from "./Invitations.ts"
import { AssignmentsApi, MembersApi } from "./Members.ts"
import { polish } from "./OpenApiDocument.ts"
import { OrgsApi } from "./Orgs.ts"
import { RealtimeApi } from "./Realtime.ts"
import { PermissionsApi, RolesApi } from "./Roles.ts"

export class Api extends HttpApi.make("api")
  .add(HealthApi)
  .add(AuthApi)
  .add(OrgsApi)
  .add(InvitationsApi)
  .add(MembersApi)
  .add(AssignmentsApi)
  .add(PermissionsApi)
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
      "`POST /rpc` (NDJSON, @effect/rpc) named by its operationId, with the same schemas and errors; its " +
      "payload is the path parameters, query and body in one object. Errors are JSON " +
      "`{ _tag, code, message }` with a stable `code`. Live sessions: a WebSocket on WS_PORT pushes each " +
      "session's permissions as they change; the protocol (messages, close codes, limits) is described in " +
      "docs/live-protocol.md in the repository."
  )
  .annotate(OpenApi.Transform, polish) {}

/** The API as one server serves it: the document names that server (its PUBLIC_URL). */
export const servedApi = (publicUrl: string) => Api.annotate(OpenApi.Servers, [{ url: publicUrl.replace(/\/+$/, "") }])
