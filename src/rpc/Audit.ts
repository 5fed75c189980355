/**
 * The audit log of one organization on both doors: its entries, newest first, filtered by actor,
 * action, target and time, in pages. Also the paging pieces the admin lists share (limit, cursor).
 */
import * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as OpenApi from "@effect/platform/OpenApi"
import { Schema } from "effect"
import { BadRequest } from "./Errors.ts"
import { Id } from "./Ids.ts"
import { operations, rpcsOf } from "./Operation.ts"
import { OrganizationId, Revision } from "./Orgs.ts"
import { OrgAuthorization } from "./Security.ts"
import { storable } from "./Text.ts"

/** How many items a page holds: 1..200, 50 when not given. */
export const PageLimit = Schema.Int.pipe(Schema.between(1, 200))
/** The same as a query parameter. */
export const PageLimitParam = Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 200)).annotations({})
/** Opaque: the `nextCursor` of the previous page, passed back as is. Anything else answers 400. */
export const PageCursor = Schema.String.pipe(storable(), Schema.maxLength(200))

/** An exact action (`role.created`), or, ending with a dot, every action it starts (`role.`). */
const Action = Schema.String.pipe(Schema.pattern(/^[a-z][a-z0-9_.-]*$/), Schema.maxLength(100))
const Target = Schema.String.pipe(storable(), Schema.minLength(1), Schema.maxLength(300))

const filters = {
  /** Entries written by this user. */
  actor: Schema.optional(Id),
  action: Schema.optional(Action),
  /** Entries about this target, e.g. `organization:<id>` or `user:<id>`. */
  target: Schema.optional(Target),
  /** Inclusive, compared with `at` (millisecond precision). */
  from: Schema.optional(Schema.DateTimeUtc),
  /** Exclusive, compared with `at` (millisecond precision). */
  to: Schema.optional(Schema.DateTimeUtc),
  cursor: Schema.optional(PageCursor)
}

export const AuditQuery = Schema.Struct({ ...filters, limit: Schema.optional(PageLimitParam) })

export class AuditLogEntry extends Schema.Class<AuditLogEntry>("AuditLogEntry")({
  id: Schema.String,
  /** When it was written, UTC, to the millisecond. */
  at: Schema.DateTimeUtc,
  /** Null for the system or the operator's command line. */
  actorId: Schema.NullOr(Schema.String),
  action: Schema.String,
  target: Schema.NullOr(Schema.String),
  ip: Schema.NullOr(Schema.String),
  userAgent: Schema.NullOr(Schema.String),
  requestId: Schema.NullOr(Schema.String),
  /** The organization's revision the change produced, when it changed permissions. */
  revision: Schema.NullOr(Revision),
  /** A summary of the change (e.g. `{ before, after }`); never secrets. */
  data: Schema.Record({ key: Schema.String, value: Schema.Unknown })
}) {}

export class AuditPage extends Schema.Class<AuditPage>("AuditPage")({
  items: Schema.Array(AuditLogEntry),
  /** Present when there may be more: pass it as `cursor` for the next page. */
  nextCursor: Schema.optional(Schema.String)
}) {}

export class AuditApi extends HttpApiGroup.make("audit")
  .add(
    operations({ params: { organizationId: OrganizationId }, guard: OrgAuthorization }).get(
      "list",
      "/v1/orgs/:organizationId/audit",
      AuditPage,
      {
        query: AuditQuery,
        errors: [BadRequest],
        requires: "audit:read"
      }
    )
  )
  .annotate(OpenApi.Title, "Audit log") {}

export const AuditRpcs = rpcsOf(AuditApi)
