/**
 * Roles: an organization's permission catalog and its roles (name, description, parents, grants).
 *
 * Owns: adding keys to the catalog, creating, renaming and deleting roles, replacing a role's
 * parents (refusing cycles) and grants (refusing unknown keys, and allows the caller does not hold),
 * and protecting the system roles. Every write bumps the organization's revision, records its event
 * (Outbox) and its audit entry in one transaction.
 * Does not own: who may call what (the guard), who holds which role (assignments), deciding checks
 * (PermissionStore).
 */
import { Context, type Effect } from "effect"
import type { Conflict, Forbidden, NotFound, ServiceUnavailable } from "../rpc/Errors.ts"
import type {
  CreatePermission,
  CreateRole,
  Grant,
  Permission,
  PermissionCreated,
  Role,
  RoleChanged,
  RoleDeleted,
  UpdateRole
} from "../rpc/Roles.ts"
import type { Member } from "../rpc/Security.ts"
import type { RequestMeta } from "./AuditLog.ts"

/** A write that may give permissions: checked against what the caller holds. */
type GrantingError = Conflict | NotFound | Forbidden | ServiceUnavailable

export interface RolesShape {
  /** Built-in keys and the organization's own, sorted by key. */
  readonly permissions: (member: Member) => Effect.Effect<ReadonlyArray<Permission>>
  /** Fails with `permission_exists` when the key is built in or already the organization's. */
  readonly createPermission: (
    member: Member,
    input: typeof CreatePermission.Type,
    meta: RequestMeta
  ) => Effect.Effect<PermissionCreated, Conflict | NotFound>
  readonly list: (member: Member) => Effect.Effect<ReadonlyArray<Role>>
  readonly get: (member: Member, roleId: string) => Effect.Effect<Role, NotFound>
  readonly create: (
    member: Member,
    input: typeof CreateRole.Type,
    meta: RequestMeta
  ) => Effect.Effect<RoleChanged, GrantingError>
  /** Renames (never a system role) or describes a role. */
  readonly update: (
    member: Member,
    roleId: string,
    input: typeof UpdateRole.Type,
    meta: RequestMeta
  ) => Effect.Effect<RoleChanged, Conflict | NotFound>
  /**
   * Deletes a role that is not a system role, with its grants, parent links and assignments;
   * refused (403) unless the caller could give what it takes away (domain/Authority.ts).
   */
  readonly remove: (
    member: Member,
    roleId: string,
    meta: RequestMeta
  ) => Effect.Effect<RoleDeleted, Conflict | NotFound | Forbidden>
  /**
   * Replaces the role's parents; fails with `role_cycle` when they would make a cycle, and with
   * `system_role` for a system role (their grants and parents are fixed).
   */
  readonly setParents: (
    member: Member,
    roleId: string,
    parentIds: ReadonlyArray<string>,
    meta: RequestMeta
  ) => Effect.Effect<RoleChanged, GrantingError>
  /** Replaces the role's grants (identical grants kept once); `system_role` for a system role. */
  readonly setGrants: (
    member: Member,
    roleId: string,
    grants: ReadonlyArray<Grant>,
    meta: RequestMeta
  ) => Effect.Effect<RoleChanged, GrantingError>
}

export class Roles extends Context.Tag("app/Roles")<Roles, RolesShape>() {}
