/**
 * Platform administration on both doors, for platform administrators only (the `PlatformAdmin`
 * guard): every organization, freezing and unfreezing one, disabling and enabling a user, and
 * restoring an organization's owner when its owners lost their access.
 */
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import { Schema } from "effect"
import { PageCursor, PageLimitParam } from "./Audit.ts"
import { BadRequest, Conflict, NotFound } from "./Errors.ts"
import { canonicalId } from "./Ids.ts"
import { operations, rpcsOf } from "./Operation.ts"
import { OrganizationId, Revision } from "./Orgs.ts"
import { PlatformAdmin } from "./Security.ts"

export const UserId = canonicalId("UserId")

const OrganizationStatus = Schema.Literal("active", "frozen")

export class AdminOrganization extends Schema.Class<AdminOrganization>("AdminOrganization")({
  id: Schema.String,
  name: Schema.String,
  slug: Schema.String,
  status: OrganizationStatus,
  revision: Revision,
  memberCount: Schema.Int,
  createdAt: Schema.DateTimeUtc
}) {}

export class AdminOrganizationPage extends Schema.Class<AdminOrganizationPage>("AdminOrganizationPage")({
  items: Schema.Array(AdminOrganization),
  /** Present when there may be more: pass it as `cursor` for the next page. */
  nextCursor: Schema.optional(Schema.String)
}) {}

export class OrganizationStatusChange extends Schema.Class<OrganizationStatusChange>("OrganizationStatusChange")({
  organization: AdminOrganization,
  revision: Revision
}) {}

export class UserStatus extends Schema.Class<UserStatus>("UserStatus")({
  userId: Schema.String,
  disabled: Schema.Boolean
}) {}

export class OwnerRestored extends Schema.Class<OwnerRestored>("OwnerRestored")({
  organizationId: Schema.String,
  userId: Schema.String,
  /** False when the user already was an owner carrying no deny: nothing changed. */
  changed: Schema.Boolean,
  /** How many of the user's assignments of roles carrying a deny were taken away. */
  removedAssignments: Schema.Int,
  revision: Revision
}) {}

const listFilters = { status: Schema.optional(OrganizationStatus), cursor: Schema.optional(PageCursor) }

const admin = operations({
  prefix: "/v1/admin",
  params: { organizationId: OrganizationId, userId: UserId },
  guard: PlatformAdmin,
  platformAdmin: true
})

export class AdminApi extends HttpApiGroup.make("admin")
  .add(
    admin.get("listOrganizations", "/orgs", AdminOrganizationPage, {
      query: Schema.Struct({ ...listFilters, limit: Schema.optional(PageLimitParam) }),
      errors: [BadRequest]
    })
  )
  .add(
    admin.post("freeze", "/orgs/:organizationId/freeze", OrganizationStatusChange, {
      errors: [NotFound]
    })
  )
  .add(
    admin.post("unfreeze", "/orgs/:organizationId/unfreeze", OrganizationStatusChange, {
      errors: [NotFound]
    })
  )
  .add(
    admin.post("disableUser", "/users/:userId/disable", UserStatus, {
      errors: [NotFound, Conflict]
    })
  )
  .add(admin.post("enableUser", "/users/:userId/enable", UserStatus, { errors: [NotFound] }))
  .add(
    admin.post("restoreOwner", "/orgs/:organizationId/owners/:userId", OwnerRestored, {
      errors: [NotFound]
    })
  )
  .annotate(OpenApi.Title, "Platform administration") {}

export const AdminRpcs = rpcsOf(AdminApi)
