/**
 * Admin: what platform administrators do to the platform as a whole.
 *
 * Owns: listing every organization, freezing and unfreezing one (a revision bump with its event,
 * so every enforcement point and live session denies at once), disabling and enabling a user
 * (disabling ends every live session of the user on every node), restoring an organization's owner
 * (S45). Each change is audited with the administrator as actor, in the change's transaction.
 * Does not own: who is a platform administrator (the guard reads it; the `yarn admin` command line
 * sets it), or what a frozen organization or disabled user may do (PermissionStore denies).
 */
import { Context, type Effect } from "effect"
import type { AdminOrganizationPage, OrganizationStatusChange, OwnerRestored, UserStatus } from "../rpc/Admin.ts"
import type { BadRequest, Conflict, NotFound } from "../rpc/Errors.ts"
import type { SignedIn } from "../rpc/Security.ts"
import type { RequestMeta } from "./AuditLog.ts"

export interface OrganizationFilter {
  readonly status?: "active" | "frozen" | undefined
  /** The `nextCursor` of the previous page; a cursor this service did not make fails with BadRequest. */
  readonly cursor?: string | undefined
  /** 1..200, 50 by default. */
  readonly limit?: number | undefined
}

export interface AdminShape {
  /** Every organization, newest first (creation time, then id), with its member count. */
  readonly listOrganizations: (filter: OrganizationFilter) => Effect.Effect<AdminOrganizationPage, BadRequest>
  /**
   * Freezes the organization: a new revision with `organization.frozen`. Freezing a frozen
   * organization changes nothing and answers its current revision (no new revision, no event).
   */
  readonly freeze: (
    admin: SignedIn,
    organizationId: string,
    meta: RequestMeta
  ) => Effect.Effect<OrganizationStatusChange, NotFound>
  /** The reverse, with `organization.unfrozen`; idempotent the same way. */
  readonly unfreeze: (
    admin: SignedIn,
    organizationId: string,
    meta: RequestMeta
  ) => Effect.Effect<OrganizationStatusChange, NotFound>
  /**
   * Disables the user and ends every live session (Postgres, then Revocations, so their access
   * tokens stop working on every node). Idempotent; an administrator cannot disable themselves.
   */
  readonly disableUser: (
    admin: SignedIn,
    userId: string,
    meta: RequestMeta
  ) => Effect.Effect<UserStatus, NotFound | Conflict>
  /** Lets the user sign in again; ended sessions stay ended. Idempotent. */
  readonly enableUser: (admin: SignedIn, userId: string, meta: RequestMeta) => Effect.Effect<UserStatus, NotFound>
  /**
   * Makes the user an owner of the organization that no one can lock out: a member, holding the
   * owner role organization-wide with no expiry, with no role carrying a deny. Idempotent.
   */
  readonly restoreOwner: (
    admin: SignedIn,
    organizationId: string,
    userId: string,
    meta: RequestMeta
  ) => Effect.Effect<OwnerRestored, NotFound>
}

export class Admin extends Context.Tag("app/Admin")<Admin, AdminShape>() {}
