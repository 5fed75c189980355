/**
 * Members: who belongs to an organization and which roles they hold there.
 *
 * Owns: listing and removing members, listing, giving and taking away role assignments. Every
 * change to what someone may do bumps the organization's revision with its events (Outbox) and is
 * audited in the same transaction. Who may change whose access is domain/Authority.ts (403 when
 * refused), and an organization always keeps an organization-wide `owner`.
 * Does not own: joining (Invitations), who may call what (the guard, which supplies the `Member`),
 * roles and grants (Roles), deciding checks (PermissionStore), expiry of assignments (the scheduler).
 */
import { Context, type DateTime, type Effect } from "effect"
import type { BadRequest, Conflict, Forbidden, NotFound, ServiceUnavailable } from "../rpc/Errors.ts"
import type {
  Assignment,
  AssignmentCreated,
  AssignmentDeleted,
  MemberRemoved,
  OrganizationMember
} from "../rpc/Members.ts"
import type { Member } from "../rpc/Security.ts"
import type { RequestMeta } from "./AuditLog.ts"

export interface AssignmentFilter {
  readonly userId?: string | undefined
  readonly roleId?: string | undefined
  readonly includeExpired?: boolean | undefined
}

export interface AssignmentInput {
  readonly userId: string
  readonly roleId: string
  readonly scope?: { readonly type: string; readonly id: string } | undefined
  readonly expiresAt?: DateTime.Utc | undefined
}

export interface MembersShape {
  /** Members by the time they joined, with their current (unexpired) roles. */
  readonly list: (member: Member) => Effect.Effect<ReadonlyArray<OrganizationMember>>
  /** Ends the membership and every assignment of `userId` in the organization; pending invitations to them are revoked. */
  readonly remove: (
    member: Member,
    userId: string,
    meta: RequestMeta
  ) => Effect.Effect<MemberRemoved, NotFound | Forbidden | Conflict>
  readonly assignments: (member: Member, filter: AssignmentFilter) => Effect.Effect<ReadonlyArray<Assignment>>
  readonly assign: (
    member: Member,
    input: AssignmentInput,
    meta: RequestMeta
  ) => Effect.Effect<AssignmentCreated, BadRequest | NotFound | Forbidden | Conflict | ServiceUnavailable>
  readonly unassign: (
    member: Member,
    assignmentId: string,
    meta: RequestMeta
  ) => Effect.Effect<AssignmentDeleted, NotFound | Forbidden | Conflict>
}

export class Members extends Context.Tag("app/Members")<Members, MembersShape>() {}
