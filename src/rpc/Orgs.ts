/** Organizations (tenants): create, list, read, rename, delete. */
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as OpenApi from "@effect/platform/OpenApi"
import { Schema } from "effect"
import { Conflict } from "./Errors.ts"
import { canonicalId } from "./Ids.ts"
import { operations, rpcsOf } from "./Operation.ts"
import { Authentication, OrgAuthorization } from "./Security.ts"
import { storable } from "./Text.ts"

/** Revisions are strings holding integers, so they survive JSON beyond 2^53. */
export const Revision = Schema.String.pipe(Schema.pattern(/^\d+$/)).annotations({ identifier: "Revision" })

export const OrganizationId = canonicalId("OrganizationId")

const Slug = Schema.String.pipe(
  Schema.pattern(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/, {
    message: () => "must be 1–63 lowercase letters, digits or dashes, not starting or ending with a dash"
  })
)
const Name = Schema.Trim.pipe(storable(), Schema.minLength(1), Schema.maxLength(200))

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

export const OrgPath = Schema.Struct({ organizationId: OrganizationId })

const signedIn = operations({ guard: Authentication })
const inOrg = operations({ params: { organizationId: OrganizationId }, guard: OrgAuthorization })

export class OrgsApi extends HttpApiGroup.make("orgs")
  .add(
    signedIn.post("create", "/v1/orgs", Organization, { payload: CreateOrganization, status: 201, errors: [Conflict] })
  )
  .add(signedIn.get("list", "/v1/orgs", Schema.Array(MyOrganization)))
  .add(inOrg.get("get", "/v1/orgs/:organizationId", Organization, { requires: "org:read" }))
  .add(
    inOrg.patch("update", "/v1/orgs/:organizationId", Organization, {
      payload: UpdateOrganization,
      requires: "org:update"
    })
  )
  .add(inOrg.del("delete", "/v1/orgs/:organizationId", HttpApiSchema.NoContent, { requires: "org:delete" }))
  .annotate(OpenApi.Title, "Organizations") {}

export const OrgsRpcs = rpcsOf(OrgsApi)
