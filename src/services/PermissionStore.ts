/**
 * PermissionStore: what a user may do in an organization, computed from Postgres with the
 * semantics of `layers/Decision.ts`.
 *
 * Owns: loading an organization's roles, parents, grants and a user's assignments, and deciding
 * checks on them; a frozen organization or a disabled user is denied everything. Does not own:
 * changing any of it (the RBAC services do, inside transactions that bump the revision).
 * A failure while deciding is a denial: the error is logged and `ServiceUnavailable` returned.
 */
import { Context, type Effect } from "effect"
import type { Resource } from "../layers/Decision.ts"
import type { ServiceUnavailable } from "../rpc/Errors.ts"

export interface CheckRequest {
  readonly organizationId: string
  readonly userId: string
  readonly permission: string
  readonly resource?: Resource | undefined
}

export interface CheckAnswer {
  /** Whether the user belongs to the organization at all (callers answer 404 when not). */
  readonly member: boolean
  readonly allowed: boolean
  readonly reason: string
  /** The organization's revision the answer reflects, as a string holding an integer. */
  readonly revision: string
}

export interface EffectivePermissions {
  readonly revision: string
  /** Catalog keys allowed organization-wide (conditional grants excluded: they depend on the resource). */
  readonly permissions: ReadonlyArray<string>
  /** Keys allowed only on one resource, by `type/id`. */
  readonly scoped: Readonly<Record<string, ReadonlyArray<string>>>
}

export interface GrantRequest {
  /** Roles about to be given (their ancestors' grants count too). */
  readonly roleIds?: ReadonlyArray<string> | undefined
  /** Grant patterns about to be written (`*`, `resource:*` or a key); only allows matter. */
  readonly patterns?: ReadonlyArray<string> | undefined
}

export interface PermissionStoreShape {
  readonly check: (request: CheckRequest) => Effect.Effect<CheckAnswer, ServiceUnavailable>
  readonly effective: (
    organizationId: string,
    userId: string
  ) => Effect.Effect<EffectivePermissions, ServiceUnavailable>
  /**
   * Privilege escalation guard: the first permission that these roles or allow patterns would
   * give which `actorId` does not hold organization-wide, or `undefined` when the actor holds all
   * of it. A wildcard needs the actor to hold the wildcard itself and every catalog key it covers.
   */
  readonly notHeldBy: (
    organizationId: string,
    actorId: string,
    request: GrantRequest
  ) => Effect.Effect<string | undefined, ServiceUnavailable>
}

export class PermissionStore extends Context.Tag("app/PermissionStore")<PermissionStore, PermissionStoreShape>() {}
