/**
 * Members, invitations and assignments of one organization: the contract of both doors. The
 * organization is the one in the path (HTTP) or `organizationId` (RPC), checked by the guard;
 * every id in a path or payload must belong to it, else 404.
 */
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { BadRequest, Conflict, Forbidden, NotFound, ServiceUnavailable } from "./Errors.ts"
import { CreateInvitation, Invitation, InvitationCreated, InvitationRevoked } from "./Invitations.ts"
import { OrganizationId, Revision } from "./Orgs.ts"
import { OrgAuthorization, RequiredPermission, RpcOrgAuthorization, requires } from "./Security.ts"

/** One resource an assignment is limited to, e.g. `{type: "project", id: "42"}`. */
export const Scope = Schema.Struct({
  type: Schema.String.pipe(
    Schema.minLength(1),
    Schema.maxLength(200),
    Schema.pattern(/^[a-z][a-z0-9_.-]*$/, { message: () => "must be lowercase letters, digits, _ . or -" })
  ),
  id: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200))
}).annotations({ identifier: "Scope" })

export class MemberRole extends Schema.Class<MemberRole>("MemberRole")({
  assignmentId: Schema.String,
  roleId: Schema.String,
  name: Schema.String,
  scope: Schema.optional(Scope),
  expiresAt: Schema.optional(Schema.DateTimeUtc)
}) {}

export class OrganizationMember extends Schema.Class<OrganizationMember>("OrganizationMember")({
  userId: Schema.String,
  email: Schema.String,
  name: Schema.String,
  joinedAt: Schema.DateTimeUtc,
  /** Current roles; expired assignments are left out. */
  roles: Schema.Array(MemberRole)
}) {}

export class MemberRemoved extends Schema.Class<MemberRemoved>("MemberRemoved")({
  removed: Schema.Literal(true),
  revision: Revision
}) {}

export class Assignment extends Schema.Class<Assignment>("Assignment")({
  id: Schema.String,
  userId: Schema.String,
  roleId: Schema.String,
  roleName: Schema.String,
  scope: Schema.optional(Scope),
  expiresAt: Schema.optional(Schema.DateTimeUtc),
  /** Who gave it; null when that account is gone or it was given by the system. */
  grantedBy: Schema.NullOr(Schema.String),
  createdAt: Schema.DateTimeUtc
}) {}

export const AssignmentFilter = Schema.Struct({
  userId: Schema.optional(Schema.UUID),
  roleId: Schema.optional(Schema.UUID),
  includeExpired: Schema.optional(Schema.BooleanFromString)
})

export const CreateAssignment = Schema.Struct({
  userId: Schema.UUID,
  roleId: Schema.UUID,
  scope: Schema.optional(Scope),
  /** Must be in the future; the assignment counts for nothing from then on. */
  expiresAt: Schema.optional(Schema.DateTimeUtc)
})

export class AssignmentCreated extends Schema.Class<AssignmentCreated>("AssignmentCreated")({
  assignment: Assignment,
  revision: Revision
}) {}

export class AssignmentDeleted extends Schema.Class<AssignmentDeleted>("AssignmentDeleted")({
  deleted: Schema.Literal(true),
  revision: Revision
}) {}

const OrgPath = Schema.Struct({ org: OrganizationId })

export class MembersApi extends HttpApiGroup.make("members")
  .add(
    HttpApiEndpoint.post("invite", "/v1/orgs/:org/invitations")
      .setPath(OrgPath)
      .setPayload(CreateInvitation)
      .addSuccess(InvitationCreated, { status: 201 })
      .addError(NotFound)
      .addError(Forbidden)
      .addError(Conflict)
      .addError(ServiceUnavailable)
      .annotateContext(requires("members:invite"))
  )
  .add(
    HttpApiEndpoint.get("invitations", "/v1/orgs/:org/invitations")
      .setPath(OrgPath)
      .addSuccess(Schema.Array(Invitation))
      .annotateContext(requires("members:invite"))
  )
  .add(
    HttpApiEndpoint.del("revokeInvitation", "/v1/orgs/:org/invitations/:invitationId")
      .setPath(Schema.Struct({ org: OrganizationId, invitationId: Schema.UUID }))
      .addSuccess(InvitationRevoked)
      .addError(NotFound)
      .annotateContext(requires("members:invite"))
  )
  .add(
    HttpApiEndpoint.get("list", "/v1/orgs/:org/members")
      .setPath(OrgPath)
      .addSuccess(Schema.Array(OrganizationMember))
      .annotateContext(requires("members:read"))
  )
  .add(
    HttpApiEndpoint.del("remove", "/v1/orgs/:org/members/:userId")
      .setPath(Schema.Struct({ org: OrganizationId, userId: Schema.UUID }))
      .addSuccess(MemberRemoved)
      .addError(NotFound)
      .addError(Conflict)
      .annotateContext(requires("members:remove"))
  )
  .add(
    HttpApiEndpoint.get("assignments", "/v1/orgs/:org/assignments")
      .setPath(OrgPath)
      .setUrlParams(AssignmentFilter)
      .addSuccess(Schema.Array(Assignment))
      .annotateContext(requires("assignments:read"))
  )
  .add(
    HttpApiEndpoint.post("assign", "/v1/orgs/:org/assignments")
      .setPath(OrgPath)
      .setPayload(CreateAssignment)
      .addSuccess(AssignmentCreated, { status: 201 })
      .addError(BadRequest)
      .addError(NotFound)
      .addError(Forbidden)
      .addError(Conflict)
      .addError(ServiceUnavailable)
      .annotateContext(requires("assignments:create"))
  )
  .add(
    HttpApiEndpoint.del("unassign", "/v1/orgs/:org/assignments/:assignmentId")
      .setPath(Schema.Struct({ org: OrganizationId, assignmentId: Schema.UUID }))
      .addSuccess(AssignmentDeleted)
      .addError(NotFound)
      .addError(Conflict)
      .annotateContext(requires("assignments:delete"))
  )
  .middleware(OrgAuthorization)
  .annotate(OpenApi.Title, "Members and assignments") {}

const errors = Schema.Union(BadRequest, NotFound, Forbidden, Conflict, ServiceUnavailable)
const organizationId = { organizationId: OrganizationId }

export class MembersRpcs extends RpcGroup.make(
  Rpc.make("invitations.create", {
    payload: { ...organizationId, ...CreateInvitation.fields },
    success: InvitationCreated,
    error: errors
  }).annotate(RequiredPermission, "members:invite"),
  Rpc.make("invitations.list", {
    payload: organizationId,
    success: Schema.Array(Invitation),
    error: errors
  }).annotate(RequiredPermission, "members:invite"),
  Rpc.make("invitations.revoke", {
    payload: { ...organizationId, invitationId: Schema.UUID },
    success: InvitationRevoked,
    error: errors
  }).annotate(RequiredPermission, "members:invite"),
  Rpc.make("members.list", {
    payload: organizationId,
    success: Schema.Array(OrganizationMember),
    error: errors
  }).annotate(RequiredPermission, "members:read"),
  Rpc.make("members.remove", {
    payload: { ...organizationId, userId: Schema.UUID },
    success: MemberRemoved,
    error: errors
  }).annotate(RequiredPermission, "members:remove"),
  Rpc.make("assignments.list", {
    payload: {
      ...organizationId,
      userId: Schema.optional(Schema.UUID),
      roleId: Schema.optional(Schema.UUID),
      includeExpired: Schema.optional(Schema.Boolean)
    },
    success: Schema.Array(Assignment),
    error: errors
  }).annotate(RequiredPermission, "assignments:read"),
  Rpc.make("assignments.create", {
    payload: { ...organizationId, ...CreateAssignment.fields },
    success: AssignmentCreated,
    error: errors
  }).annotate(RequiredPermission, "assignments:create"),
  Rpc.make("assignments.delete", {
    payload: { ...organizationId, assignmentId: Schema.UUID },
    success: AssignmentDeleted,
    error: errors
  }).annotate(RequiredPermission, "assignments:delete")
).middleware(RpcOrgAuthorization) {}
