/**
 * PermissionStore: what a user may do in an organization, computed from Postgres with the
 * semantics of `domain/Decision.ts` and `domain/Policy.ts`.
 *
 * Owns: loading an organization's roles, parents, grants and a user's assignments, and deciding
 * checks on them; a frozen organization or a disabled user is denied everything. Does not own:
 * changing any of it (the RBAC services do, inside transactions that bump the revision).
 * A failure while deciding is a denial: the error is logged and `ServiceUnavailable` returned.
 */
import { Context, type Effect } from "effect"
import type { Condition, Resource } from "../domain/Decision.ts"
import type { Conflict, ServiceUnavailable } from "../rpc/Errors.ts"

/**
 * How fresh an answer must be. `latest` (the default): it reflects every change committed before the
 * call, at the price of one revision read per organization shared by the calls arriving together.
 * `cached`: this node's newest applied revision, with no round trip (usually milliseconds behind;
 * the answer says which revision it used). A `minRevision` always holds on top of either.
 */
export type Consistency = "latest" | "cached"

export interface CheckRequest {
  readonly organizationId: string
  readonly userId: string
  readonly permission: string
  readonly resource?: Resource | undefined
  /** Answer at this revision or a later one (read-your-writes); waits briefly, else `revision_not_reached`. */
  readonly minRevision?: string | undefined
  readonly consistency?: Consistency | undefined
}

export interface CheckAnswer {
  /** Whether the user belongs to the organization at all (callers answer 404 when not). */
  readonly member: boolean
  readonly allowed: boolean
  readonly reason: string
  /** True when the organization is frozen or the user disabled: nothing at all is allowed. */
  readonly blocked?: boolean | undefined
  /** The organization's revision the answer reflects, as a string holding an integer. */
  readonly revision: string
}

/** One way a check was granted or denied: the grant, the role holding it, and the assignment it came through. */
export interface ExplainedPath {
  readonly effect: "allow" | "deny"
  readonly permission: string
  readonly condition?: Condition | undefined
  /** The role that holds the grant: the assigned role or one of its ancestors. */
  readonly role: { readonly id: string; readonly name: string }
  readonly assignment: {
    readonly id: string
    readonly role: { readonly id: string; readonly name: string }
    readonly scope?: { readonly type: string; readonly id: string } | undefined
    readonly expiresAt?: number | undefined
  }
}

export interface Explanation extends CheckAnswer {
  readonly paths: ReadonlyArray<ExplainedPath>
}

export interface EffectivePermissions {
  readonly revision: string
  /** Catalog keys allowed organization-wide (conditional grants excluded: they depend on the resource). */
  readonly permissions: ReadonlyArray<string>
  /** Keys allowed on one resource beyond the organization-wide ones, by `type/id`. */
  readonly scoped: Readonly<Record<string, ReadonlyArray<string>>>
  /**
   * Keys allowed organization-wide but denied on one resource (a deny in a role assigned on it),
   * by `type/id`. On any other resource the organization-wide set applies.
   */
  readonly scopedDenied: Readonly<Record<string, ReadonlyArray<string>>>
}

/** What a live session holds: its access, effective set, roles and the roles whose changes affect it. */
export interface SessionSnapshot extends EffectivePermissions {
  readonly access: "ok" | "not_member" | "frozen" | "disabled" | "no_organization"
  /** Names of the roles assigned organization-wide and not expired, sorted. */
  readonly roles: ReadonlyArray<string>
  /** Every role assigned to the user (any scope, expired or not) and their ancestors. */
  readonly roleIds: ReadonlyArray<string>
}

export interface PermissionStoreShape {
  readonly check: (request: CheckRequest) => Effect.Effect<CheckAnswer, ServiceUnavailable | Conflict>
  /**
   * The check's answer when it needs no wait and no read (a `minRevision` this node's memory has
   * reached, the user loaded): the same answer `check` would give; undefined otherwise.
   */
  readonly checkNow: (request: CheckRequest) => CheckAnswer | undefined
  /** `checkMany`'s answers when they need no wait and no read, as `checkNow`; undefined otherwise. */
  readonly checkManyNow: (
    organizationId: string,
    checks: ReadonlyArray<Omit<CheckRequest, "organizationId" | "minRevision" | "consistency">>,
    minRevision: string | undefined,
    consistency: Consistency | undefined
  ) => ReadonlyArray<CheckAnswer> | undefined
  /** Several checks in one organization, all answered at one revision, in order. */
  readonly checkMany: (
    organizationId: string,
    checks: ReadonlyArray<Omit<CheckRequest, "organizationId" | "minRevision" | "consistency">>,
    minRevision?: string | undefined,
    consistency?: Consistency | undefined
  ) => Effect.Effect<ReadonlyArray<CheckAnswer>, ServiceUnavailable | Conflict>
  /** The check's answer with every path that grants or denies it. */
  readonly explain: (request: CheckRequest) => Effect.Effect<Explanation, ServiceUnavailable | Conflict>
  /** At the organization's latest revision, or `minRevision` when that is later (callers pass one already reached). */
  readonly effective: (
    organizationId: string,
    userId: string,
    minRevision?: string | undefined
  ) => Effect.Effect<EffectivePermissions, ServiceUnavailable>
  /** A live session's state, at `minRevision` or later. */
  readonly session: (
    organizationId: string,
    userId: string,
    minRevision?: string | undefined
  ) => Effect.Effect<SessionSnapshot, ServiceUnavailable | Conflict>
  /** The live-session state of several users of one organization, all at one revision, in order. */
  readonly sessions: (
    organizationId: string,
    userIds: ReadonlyArray<string>,
    minRevision?: string | undefined
  ) => Effect.Effect<ReadonlyArray<SessionSnapshot>, ServiceUnavailable | Conflict>
}

export class PermissionStore extends Context.Tag("app/PermissionStore")<PermissionStore, PermissionStoreShape>() {}
