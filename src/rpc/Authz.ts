/**
 * Checks and explanations: may this user do that, on this resource, at least at this revision?
 * Any member may ask about themselves; asking about someone else needs `authz:check` (or
 * `assignments:read` for a whole effective set). A user who is not a member answers 404.
 */
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import { Schema } from "effect"
import { PERMISSION_KEY } from "../domain/Decision.ts"
import { Conflict, NotFound, ServiceUnavailable } from "./Errors.ts"
import { Id } from "./Ids.ts"
import { operations, rpcsOf } from "./Operation.ts"
import { OrganizationId, Revision } from "./Orgs.ts"
import { OrgAuthorization } from "./Security.ts"
import { storable } from "./Text.ts"

const Text = Schema.String.pipe(storable(), Schema.minLength(1), Schema.maxLength(200))

export const PermissionKey = Schema.String.pipe(
  Schema.maxLength(200),
  Schema.pattern(PERMISSION_KEY, { message: () => "must be a permission key such as `documents:read`" })
).annotations({ identifier: "PermissionKey" })

export const CheckedResource = Schema.Struct({
  type: Text,
  id: Text,
  /** Data for conditions, e.g. `{ "ownerId": "…" }`; a condition on a missing attribute is false. */
  attributes: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
}).annotations({ identifier: "CheckedResource" })

const CheckFields = {
  /** Whom to ask about; the caller when absent. */
  userId: Schema.optional(Id),
  permission: PermissionKey,
  resource: Schema.optional(CheckedResource)
}

/**
 * `latest` (the default): the answer reflects every change committed before the request.
 * `cached`: the answering node's newest applied revision, with no database round trip (usually
 * milliseconds behind; the answer's `revision` says which it used). `minRevision` holds on top of
 * either.
 */
export const Consistency = Schema.Literal("latest", "cached").annotations({
  identifier: "Consistency",
  description: "latest (default): every change committed before the request; cached: the node's newest applied revision, no database round trip"
})

export const CheckRequest = Schema.Struct({
  ...CheckFields,
  /** Answer at this revision or later: pass the revision a write returned to read your own writes. */
  minRevision: Schema.optional(Revision),
  consistency: Schema.optional(Consistency)
}).annotations({ identifier: "CheckRequest" })

export const BatchCheckRequest = Schema.Struct({
  checks: Schema.Array(Schema.Struct(CheckFields)).pipe(Schema.minItems(1), Schema.maxItems(100)),
  minRevision: Schema.optional(Revision),
  consistency: Schema.optional(Consistency)
}).annotations({ identifier: "BatchCheckRequest" })

export class CheckResult extends Schema.Class<CheckResult>("CheckResult")({
  allowed: Schema.Boolean,
  /** The deciding role and grant, or the rule that denied. */
  reason: Schema.String,
  revision: Revision
}) {}

export class BatchCheckResult extends Schema.Class<BatchCheckResult>("BatchCheckResult")({
  /** Every result is at this one revision. */
  revision: Revision,
  results: Schema.Array(Schema.Struct({ allowed: Schema.Boolean, reason: Schema.String }))
}) {}

const Named = Schema.Struct({ id: Schema.String, name: Schema.String })

export const ExplainedPath = Schema.Struct({
  effect: Schema.Literal("allow", "deny"),
  /** The grant's pattern: a key, `resource:*` or `*`. */
  permission: Schema.String,
  condition: Schema.optional(Schema.Unknown),
  /** The role holding the grant: the assigned role itself or an ancestor it inherits from. */
  role: Named,
  assignment: Schema.Struct({
    id: Schema.String,
    role: Named,
    scope: Schema.optional(Schema.Struct({ type: Schema.String, id: Schema.String })),
    expiresAt: Schema.optional(Schema.DateTimeUtc)
  })
}).annotations({ identifier: "ExplainedPath" })

export class Explanation extends Schema.Class<Explanation>("Explanation")({
  allowed: Schema.Boolean,
  reason: Schema.String,
  revision: Revision,
  /** Every grant that applied to the check, allows and denies; deny wins. */
  paths: Schema.Array(ExplainedPath)
}) {}

export class EffectivePermissions extends Schema.Class<EffectivePermissions>("EffectivePermissions")({
  userId: Schema.String,
  revision: Revision,
  /** Catalog keys allowed organization-wide (grants with conditions depend on the resource and are left out). */
  permissions: Schema.Array(Schema.String),
  /** Keys allowed on one resource beyond the organization-wide ones, by `type/id`. */
  scoped: Schema.Record({ key: Schema.String, value: Schema.Array(Schema.String) }),
  /**
   * Organization-wide keys denied on one resource (a deny in a role assigned on it), by `type/id`.
   * On a resource: allowed = (permissions − scopedDenied[resource]) ∪ scoped[resource].
   */
  scopedDenied: Schema.Record({ key: Schema.String, value: Schema.Array(Schema.String) })
}) {}

const inOrg = operations({
  prefix: "/v1/orgs/:organizationId",
  params: { organizationId: OrganizationId, userId: Id },
  guard: OrgAuthorization
})
const checkErrors = [NotFound, Conflict, ServiceUnavailable] as const
const aboutAnyone = { selfService: true, errors: checkErrors } as const

export class AuthzApi extends HttpApiGroup.make("authz")
  .add(inOrg.post("check", "/check", CheckResult, { ...aboutAnyone, payload: CheckRequest, requires: "authz:check" }))
  .add(
    inOrg.post("checkBatch", "/check/batch", BatchCheckResult, {
      ...aboutAnyone,
      payload: BatchCheckRequest,
      requires: "authz:check"
    })
  )
  .add(
    inOrg.post("explain", "/explain", Explanation, { ...aboutAnyone, payload: CheckRequest, requires: "authz:check" })
  )
  .add(
    inOrg.get("effective", "/users/:userId/permissions", EffectivePermissions, {
      selfService: true,
      errors: [NotFound, ServiceUnavailable],
      requires: "assignments:read"
    })
  )
  .annotate(OpenApi.Title, "Checks and explanations") {}

export const AuthzRpcs = rpcsOf(AuthzApi)
