/**
 * Invitations: how people join an organization.
 *
 * Owns: the `invitations` table: mailing a single-use token (stored hashed, valid 7 days) to an
 * address with the roles the invited person gets, listing the pending ones, revoking them, and
 * joining through one (membership and roles in one transaction that bumps the organization's
 * revision, with its events and audit entry). Nobody invites with roles they do not hold.
 * Does not own: who may call what (the guard, which supplies the `Member`), members and their
 * assignments once joined (Members; removing a member revokes the invitations still pending for
 * them), roles (Roles).
 */
import { Context, type Effect } from "effect"
import type { Conflict, Forbidden, NotFound, ServiceUnavailable } from "../rpc/Errors.ts"
import type { Invitation, InvitationCreated, InvitationRevoked, Joined } from "../rpc/Invitations.ts"
import type { Member, SignedIn } from "../rpc/Security.ts"
import type { RequestMeta } from "./AuditLog.ts"

export interface InvitationInput {
  readonly email: string
  readonly roleIds?: ReadonlyArray<string> | undefined
}

export interface InvitationsShape {
  /** Mails a 7-day single-use token to `email`; does not change the revision (nobody's permissions change). */
  readonly create: (
    member: Member,
    input: InvitationInput,
    meta: RequestMeta
  ) => Effect.Effect<InvitationCreated, NotFound | Forbidden | Conflict | ServiceUnavailable>
  /** Pending invitations: not accepted, not revoked, not expired. */
  readonly list: (member: Member) => Effect.Effect<ReadonlyArray<Invitation>>
  readonly revoke: (
    member: Member,
    invitationId: string,
    meta: RequestMeta
  ) => Effect.Effect<InvitationRevoked, NotFound>
  /** Joins the invitation's organization, if `user`'s email is the invited one. */
  readonly accept: (
    user: SignedIn,
    token: string,
    meta: RequestMeta
  ) => Effect.Effect<Joined, NotFound | Forbidden | Conflict>
}

export class Invitations extends Context.Tag("app/Invitations")<Invitations, InvitationsShape>() {}
