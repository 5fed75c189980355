/**
 * Invitations: creating, listing and revoking them are organization operations (`members:invite`);
 * accepting needs only a session, because the one accepting is not a member yet: the mailed token
 * and the signed-in user's email are what admit them.
 */
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import { Schema } from "effect"
import { Email } from "./Auth.ts"
import { Conflict, Forbidden, NotFound, ServiceUnavailable } from "./Errors.ts"
import { Id } from "./Ids.ts"
import { operations, rpcsOf } from "./Operation.ts"
import { OrganizationId, Revision } from "./Orgs.ts"
import { Authentication, OrgAuthorization } from "./Security.ts"
import { storable } from "./Text.ts"

export const CreateInvitation = Schema.Struct({
  /** Surrounding spaces are dropped; the address is compared without regard to case. */
  email: Schema.compose(Schema.Trim, Email),
  /** Roles of the organization the invited person gets on joining; the inviter must hold all they give. */
  roleIds: Schema.optional(Schema.Array(Id).pipe(Schema.maxItems(50)))
})

/** A pending invitation; its token is never shown again after it was mailed. */
export class Invitation extends Schema.Class<Invitation>("Invitation")({
  id: Schema.String,
  email: Schema.String,
  roleIds: Schema.Array(Schema.String),
  expiresAt: Schema.DateTimeUtc,
  createdAt: Schema.DateTimeUtc
}) {}

export class InvitationCreated extends Schema.Class<InvitationCreated>("InvitationCreated")({
  invitation: Invitation
}) {}

export class InvitationRevoked extends Schema.Class<InvitationRevoked>("InvitationRevoked")({
  revoked: Schema.Literal(true)
}) {}

export const AcceptInvitation = Schema.Struct({
  token: Schema.String.pipe(storable(), Schema.minLength(1), Schema.maxLength(512))
})

/** The organization joined, the names of the roles received, and the revision that records it. */
export class Joined extends Schema.Class<Joined>("Joined")({
  organizationId: Schema.String,
  roles: Schema.Array(Schema.String),
  revision: Revision
}) {}

const inOrg = operations({
  prefix: "/v1/orgs/:organizationId",
  params: { organizationId: OrganizationId, invitationId: Id },
  guard: OrgAuthorization
})

export class InvitationsApi extends HttpApiGroup.make("invitations")
  .add(
    inOrg.post("create", "/invitations", InvitationCreated, {
      payload: CreateInvitation,
      status: 201,
      errors: [NotFound, Forbidden, Conflict, ServiceUnavailable],
      requires: "members:invite"
    })
  )
  .add(inOrg.get("list", "/invitations", Schema.Array(Invitation), { requires: "members:invite" }))
  .add(
    inOrg.del("revoke", "/invitations/:invitationId", InvitationRevoked, {
      errors: [NotFound],
      requires: "members:invite"
    })
  )
  .add(
    operations({ guard: Authentication }).post("accept", "/v1/invitations/accept", Joined, {
      payload: AcceptInvitation,
      errors: [NotFound, Forbidden, Conflict]
    })
  )
  .annotate(OpenApi.Title, "Invitations") {}

export const InvitationsRpcs = rpcsOf(InvitationsApi)
