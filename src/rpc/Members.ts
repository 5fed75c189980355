/**
 * Members and assignments of one organization: the contract of both doors. The organization is
 * `organizationId` (in the path on HTTP, in the payload on RPC), checked by the guard; every id in
 * a path or payload must belong to it, else 404.
 */
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import { Schema } from "effect"
import { BadRequest, Conflict, Forbidden, NotFound, ServiceUnavailable } from "./Errors.ts"
import { Id } from "./Ids.ts"
import { operations, rpcsOf } from "./Operation.ts"
import { OrganizationId, Revision } from "./Orgs.ts"
import { OrgAuthorization } from "./Security.ts"
import { storable } from "./Text.ts"

/** One resource an assignment is limited to, e.g. `{type: "project", id: "42"}`. */
export const Scope = Schema.Struct({
  type: Schema.String.pipe(
    Schema.minLength(1),
    Schema.maxLength(200),
    Schema.pattern(/^[a-z][a-z0-9_.-]*$/, { message: () => "must be lowercase letters, digits, _ . or -" })
  ),
  id: Schema.String.pipe(storable(), Schema.minLength(1), Schema.maxLength(200))
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
  userId: Schema.optional(Id),
  roleId: Schema.optional(Id),
  includeExpired: Schema.optional(Schema.BooleanFromString)
})

export const CreateAssignment = Schema.Struct({
  userId: Id,
  roleId: Id,
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

const inOrg = operations({
  prefix: "/v1/orgs/:organizationId",
  params: { organizationId: OrganizationId, userId: Id, assignmentId: Id },
  guard: OrgAuthorization
})

export class MembersApi extends HttpApiGroup.make("members")
  .add(inOrg.get("list", "/members", Schema.Array(OrganizationMember), { requires: "members:read" }))
  .add(
    inOrg.del("remove", "/members/:userId", MemberRemoved, { errors: [NotFound, Conflict], requires: "members:remove" })
  )
  .annotate(OpenApi.Title, "Members") {}

export class AssignmentsApi extends HttpApiGroup.make("assignments")
  .add(
    inOrg.get("list", "/assignments", Schema.Array(Assignment), {
      query: AssignmentFilter,
      requires: "assignments:read"
    })
  )
  .add(
    inOrg.post("create", "/assignments", AssignmentCreated, {
      payload: CreateAssignment,
      status: 201,
      errors: [BadRequest, NotFound, Forbidden, Conflict, ServiceUnavailable],
      requires: "assignments:create"
    })
  )
  .add(
    inOrg.del("delete", "/assignments/:assignmentId", AssignmentDeleted, {
      errors: [NotFound, Conflict],
      requires: "assignments:delete"
    })
  )
  .annotate(OpenApi.Title, "Assignments") {}

export const MembersRpcs = rpcsOf(MembersApi)
export const AssignmentsRpcs = rpcsOf(AssignmentsApi)
