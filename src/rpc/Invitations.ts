/**
 * Invitations: creating, listing and revoking them are organization operations (`members:invite`);
 * accepting needs only a session, because the one accepting is not a member yet: the mailed token
 * and the signed-in user's email are what admit them.
 */
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { Email } from "./Auth.ts"
import { Conflict, Forbidden, NotFound, ServiceUnavailable } from "./Errors.ts"
import { rpcsOf } from "./Operation.ts"
import { OrganizationId, OrgPath, Revision } from "./Orgs.ts"
import { Authentication, OrgAuthorization, requires } from "./Security.ts"

export const CreateInvitation = Schema.Struct({
  /** Surrounding spaces are dropped; the address is compared without regard to case. */
  email: Schema.compose(Schema.Trim, Email),
  /** Roles of the organization the invited person gets on joining; the inviter must hold all they give. */
  roleIds: Schema.optional(Schema.Array(Schema.UUID).pipe(Schema.maxItems(50)))
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

export const AcceptInvitation = Schema.Struct({ token: Schema.String.pipe(Schema.minLength(1), Schema.maxLength(512)) })

/** The organization joined, the names of the roles received, and the revision that records it. */
export class Joined extends Schema.Class<Joined>("Joined")({
  organizationId: Schema.String,
  roles: Schema.Array(Schema.String),
  revision: Revision
}) {}

export class InvitationsApi extends HttpApiGroup.make("invitations")
  .add(
    HttpApiEndpoint.post("create", "/v1/orgs/:organizationId/invitations")
      .setPath(OrgPath)
      .setPayload(CreateInvitation)
      .addSuccess(InvitationCreated, { status: 201 })
      .addError(NotFound)
      .addError(Forbidden)
      .addError(Conflict)
      .addError(ServiceUnavailable)
      .middleware(OrgAuthorization)
      .annotateContext(requires("members:invite"))
  )
  .add(
    HttpApiEndpoint.get("list", "/v1/orgs/:organizationId/invitations")
      .setPath(OrgPath)
      .addSuccess(Schema.Array(Invitation))
      .middleware(OrgAuthorization)
      .annotateContext(requires("members:invite"))
  )
  .add(
    HttpApiEndpoint.del("revoke", "/v1/orgs/:organizationId/invitations/:invitationId")
      .setPath(Schema.Struct({ organizationId: OrganizationId, invitationId: Schema.UUID }))
      .addSuccess(InvitationRevoked)
      .addError(NotFound)
      .middleware(OrgAuthorization)
      .annotateContext(requires("members:invite"))
  )
  .add(
    HttpApiEndpoint.post("accept", "/v1/invitations/accept")
      .setPayload(AcceptInvitation)
      .addSuccess(Joined)
      .addError(NotFound)
      .addError(Forbidden)
      .addError(Conflict)
      .middleware(Authentication)
      .annotate(
        OpenApi.Description,
        "Joins the organization with the invited roles (those still existing). The signed-in user's email must " +
          "be the invited address (else 403, and the invitation stays usable); an unknown, used, revoked or " +
          "expired token answers 404; a token is used once. Someone who is already a member gets 409 " +
          "`already_member`, and the invitation is used up."
      )
  )
  .annotate(OpenApi.Title, "Invitations") {}

export const InvitationsRpcs = rpcsOf(InvitationsApi)
