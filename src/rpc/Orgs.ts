/** Organizations (tenants): create, list, read, rename, delete. */
import { HttpApiEndpoint, HttpApiGroup, HttpApiSchema, OpenApi } from "@effect/platform"
import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { Conflict, Forbidden, NotFound, ServiceUnavailable } from "./Errors.ts"
import {
  Authentication,
  OrgAuthorization,
  RequiredPermission,
  RpcAuthentication,
  RpcOrgAuthorization,
  requires
} from "./Security.ts"

/** Revisions are strings holding integers, so they survive JSON beyond 2^53. */
export const Revision = Schema.String.pipe(Schema.pattern(/^\d+$/)).annotations({ identifier: "Revision" })

export const OrganizationId = Schema.UUID.annotations({ identifier: "OrganizationId" })

const Slug = Schema.String.pipe(
  Schema.pattern(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/, {
    message: () => "must be 1–63 lowercase letters, digits or dashes, not starting or ending with a dash"
  })
)
const Name = Schema.Trim.pipe(Schema.minLength(1), Schema.maxLength(200))

export const CreateOrganization = Schema.Struct({ name: Name, slug: Slug })
export const UpdateOrganization = Schema.Struct({ name: Schema.optional(Name) })

export class Organization extends Schema.Class<Organization>("Organization")({
  id: Schema.String,
  name: Schema.String,
  slug: Schema.String,
  status: Schema.Literal("active", "frozen"),
  revision: Revision,
  createdAt: Schema.DateTimeUtc
}) {}

export class MyOrganization extends Schema.Class<MyOrganization>("MyOrganization")({
  id: Schema.String,
  name: Schema.String,
  slug: Schema.String,
  status: Schema.Literal("active", "frozen"),
  roles: Schema.Array(Schema.String)
}) {}

export class Deleted extends Schema.Class<Deleted>("Deleted")({ deleted: Schema.Literal(true) }) {}

const OrgPath = Schema.Struct({ org: OrganizationId })

export class OrgsApi extends HttpApiGroup.make("orgs")
  .add(
    HttpApiEndpoint.post("create", "/v1/orgs")
      .setPayload(CreateOrganization)
      .addSuccess(Organization, { status: 201 })
      .addError(Conflict)
      .annotate(OpenApi.Description, "The caller becomes the organization's owner.")
  )
  .add(HttpApiEndpoint.get("list", "/v1/orgs").addSuccess(Schema.Array(MyOrganization)))
  .middleware(Authentication)
  .annotate(OpenApi.Title, "Organizations") {}

export class OrgApi extends HttpApiGroup.make("org")
  .add(
    HttpApiEndpoint.get("get", "/v1/orgs/:org")
      .setPath(OrgPath)
      .addSuccess(Organization)
      .annotateContext(requires("org:read"))
  )
  .add(
    HttpApiEndpoint.patch("update", "/v1/orgs/:org")
      .setPath(OrgPath)
      .setPayload(UpdateOrganization)
      .addSuccess(Organization)
      .annotateContext(requires("org:update"))
  )
  .add(
    HttpApiEndpoint.del("delete", "/v1/orgs/:org")
      .setPath(OrgPath)
      .addSuccess(HttpApiSchema.NoContent)
      .annotateContext(requires("org:delete"))
  )
  .middleware(OrgAuthorization)
  .annotate(OpenApi.Title, "Organization") {}

const orgErrors = Schema.Union(NotFound, Forbidden, Conflict, ServiceUnavailable)

export class OrgsRpcs extends RpcGroup.make(
  Rpc.make("orgs.create", { payload: CreateOrganization, success: Organization, error: orgErrors }),
  Rpc.make("orgs.list", { success: Schema.Array(MyOrganization), error: orgErrors })
).middleware(RpcAuthentication) {}

export class OrgRpcs extends RpcGroup.make(
  Rpc.make("orgs.get", {
    payload: { organizationId: OrganizationId },
    success: Organization,
    error: orgErrors
  }).annotate(RequiredPermission, "org:read"),
  Rpc.make("orgs.update", {
    payload: { organizationId: OrganizationId, name: Schema.optional(Name) },
    success: Organization,
    error: orgErrors
  }).annotate(RequiredPermission, "org:update"),
  Rpc.make("orgs.delete", { payload: { organizationId: OrganizationId }, error: orgErrors }).annotate(
    RequiredPermission,
    "org:delete"
  )
).middleware(RpcOrgAuthorization) {}
