/**
 * Platform administration on both doors, for platform administrators only (the `PlatformAdmin`
 * guard): every organization, freezing and unfreezing one, disabling and enabling a user.
 */
import { HttpApiGroup, OpenApi } from "@effect/platform"
import { Schema } from "effect"
import { PageCursor, PageLimit, PageLimitParam } from "./Audit.ts"
import { BadRequest, Conflict, NotFound } from "./Errors.ts"
import { operations, rpcsOf } from "./Operation.ts"
import { OrgPath, Revision } from "./Orgs.ts"
import { PlatformAdmin } from "./Security.ts"

export const UserId = Schema.UUID.annotations({ identifier: "UserId" })

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

const listFilters = { status: Schema.optional(OrganizationStatus), cursor: Schema.optional(PageCursor) }

const admin = operations({ prefix: "/v1/admin", guard: PlatformAdmin })
const UserPath = Schema.Struct({ userId: UserId })

export class AdminApi extends HttpApiGroup.make("admin")
  .add(
    admin.get("listOrganizations", "/orgs", AdminOrganizationPage, {
      query: Schema.Struct({ ...listFilters, limit: Schema.optional(PageLimitParam) }),
      errors: [BadRequest],
      platformAdmin: true,
      summary: "Every organization, newest first"
    })
  )
  .add(
    admin.post("freeze", "/orgs/:organizationId/freeze", OrganizationStatusChange, {
      path: OrgPath,
      errors: [NotFound],
      platformAdmin: true,
      summary: "Freeze an organization: its members and keys are denied everything at once (idempotent)"
    })
  )
  .add(
    admin.post("unfreeze", "/orgs/:organizationId/unfreeze", OrganizationStatusChange, {
      path: OrgPath,
      errors: [NotFound],
      platformAdmin: true,
      summary: "Unfreeze an organization (idempotent)"
    })
  )
  .add(
    admin.post("disableUser", "/users/:userId/disable", UserStatus, {
      path: UserPath,
      errors: [NotFound, Conflict],
      platformAdmin: true,
      summary: "Disable a user: every session ends at once, login fails (idempotent)"
    })
  )
  .add(
    admin.post("enableUser", "/users/:userId/enable", UserStatus, {
      path: UserPath,
      errors: [NotFound],
      platformAdmin: true,
      summary: "Enable a user again; ended sessions stay ended (idempotent)"
    })
  )
  .annotate(OpenApi.Title, "Platform administration") {}

export const AdminRpcs = rpcsOf(AdminApi)
