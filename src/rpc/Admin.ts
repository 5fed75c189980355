/**
 * Platform administration on both doors, for platform administrators only (the `PlatformAdmin`
 * guard): every organization, freezing and unfreezing one, disabling and enabling a user.
 */
import { HttpApiEndpoint, HttpApiGroup, OpenApi } from "@effect/platform"
import { Context, Schema } from "effect"
import { PageCursor, PageLimit, PageLimitParam } from "./Audit.ts"
import { BadRequest, Conflict, NotFound } from "./Errors.ts"
import { rpcsOf } from "./Operation.ts"
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

/** What the OpenAPI document shows as the requirement of every operation here. */
const platformAdminOnly = Context.make(OpenApi.Override, {
  "x-required-permission": "platform-admin",
  description: "Platform administrators only."
})

const UserPath = Schema.Struct({ userId: UserId })

export class AdminApi extends HttpApiGroup.make("admin")
  .add(
    HttpApiEndpoint.get("listOrganizations", "/v1/admin/orgs")
      .setUrlParams(Schema.Struct({ ...listFilters, limit: Schema.optional(PageLimitParam) }))
      .addSuccess(AdminOrganizationPage)
      .addError(BadRequest)
      .annotateContext(platformAdminOnly)
      .annotate(OpenApi.Summary, "Every organization, newest first")
  )
  .add(
    HttpApiEndpoint.post("freeze", "/v1/admin/orgs/:organizationId/freeze")
      .setPath(OrgPath)
      .addSuccess(OrganizationStatusChange)
      .addError(NotFound)
      .annotateContext(platformAdminOnly)
      .annotate(
        OpenApi.Summary,
        "Freeze an organization: its members and keys are denied everything at once (idempotent)"
      )
  )
  .add(
    HttpApiEndpoint.post("unfreeze", "/v1/admin/orgs/:organizationId/unfreeze")
      .setPath(OrgPath)
      .addSuccess(OrganizationStatusChange)
      .addError(NotFound)
      .annotateContext(platformAdminOnly)
      .annotate(OpenApi.Summary, "Unfreeze an organization (idempotent)")
  )
  .add(
    HttpApiEndpoint.post("disableUser", "/v1/admin/users/:userId/disable")
      .setPath(UserPath)
      .addSuccess(UserStatus)
      .addError(NotFound)
      .addError(Conflict)
      .annotateContext(platformAdminOnly)
      .annotate(OpenApi.Summary, "Disable a user: every session ends at once, login fails (idempotent)")
  )
  .add(
    HttpApiEndpoint.post("enableUser", "/v1/admin/users/:userId/enable")
      .setPath(UserPath)
      .addSuccess(UserStatus)
      .addError(NotFound)
      .annotateContext(platformAdminOnly)
      .annotate(OpenApi.Summary, "Enable a user again; ended sessions stay ended (idempotent)")
  )
  .middleware(PlatformAdmin)
  .annotate(OpenApi.Title, "Platform administration") {}

export const AdminRpcs = rpcsOf(AdminApi)
