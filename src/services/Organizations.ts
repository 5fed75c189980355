/**
 * Organizations: tenants and their lifecycle.
 *
 * Owns: creating an organization with its system roles and its creator as owner, listing the
 * caller's organizations, renaming and deleting. Every change that affects permissions bumps the
 * organization's revision and records its events in the same transaction (Outbox).
 * Does not own: who may call what (the guard), roles and assignments after creation.
 */
import { Context, type Effect } from "effect"
import type { Conflict } from "../rpc/Errors.ts"
import type { MyOrganization, Organization } from "../rpc/Orgs.ts"
import type { Member, SignedIn } from "../rpc/Security.ts"
import type { RequestMeta } from "./AuditLog.ts"

export interface OrganizationsShape {
  readonly create: (
    user: SignedIn,
    input: { readonly name: string; readonly slug: string },
    meta: RequestMeta
  ) => Effect.Effect<Organization, Conflict>
  readonly list: (user: SignedIn) => Effect.Effect<ReadonlyArray<MyOrganization>>
  readonly get: (member: Member) => Effect.Effect<Organization>
  readonly update: (
    member: Member,
    input: { readonly name?: string | undefined },
    meta: RequestMeta
  ) => Effect.Effect<Organization>
  readonly remove: (member: Member, meta: RequestMeta) => Effect.Effect<void>
}

export class Organizations extends Context.Tag("app/Organizations")<Organizations, OrganizationsShape>() {}
