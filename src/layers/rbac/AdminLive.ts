import type { Statement } from "@effect/sql"
import { DateTime, Effect, Layer, Schema } from "effect"
import {
  AdminOrganization,
  AdminOrganizationPage,
  OrganizationStatusChange,
  OwnerRestored,
  UserStatus
} from "../../rpc/Admin.ts"
import { Conflict, NotFound } from "../../rpc/Errors.ts"
import type { SignedIn } from "../../rpc/Security.ts"
import { Admin } from "../../services/Admin.ts"
import type { RequestMeta } from "../../services/AuditLog.ts"
import { type EventType, event } from "../../services/Events.ts"
import { Revocations } from "../../services/Revocations.ts"
import { Sessions } from "../../services/Sessions.ts"
import { DEFAULT_PAGE_SIZE, isBigint, makeCursor, openCursor } from "../AuditLogLive.ts"
import { decodeRows } from "../Sql.ts"
import { Writer } from "./RbacSql.ts"
import { restoreOwner } from "./RestoreOwner.ts"

const OrgRow = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  slug: Schema.String,
  status: Schema.Literal("active", "frozen"),
  revision: Schema.String,
  memberCount: Schema.Number,
  createdAt: Schema.DateFromSelf,
  /** created_at in microseconds since the epoch: exact, unlike a JavaScript Date. */
  createdMicros: Schema.String
})
const orgRows = decodeRows(OrgRow)
const userRows = decodeRows(Schema.Struct({ wasDisabled: Schema.Boolean }))
const idRows = decodeRows(Schema.Struct({ id: Schema.String }))

const toOrganization = ({ createdMicros: _, ...row }: typeof OrgRow.Type) =>
  new AdminOrganization({ ...row, createdAt: DateTime.unsafeFromDate(row.createdAt) })

/** A page of organizations ends at `<created_at in µs>.<id>`; the next starts just past it. */
const ORG_POSITION = /^(\d{1,19})\.([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/
const isOrgPosition = (position: string) => {
  const micros = ORG_POSITION.exec(position)?.[1]
  return micros !== undefined && (micros === "0" || isBigint(micros))
}

const statusEvents = {
  frozen: "organization.frozen",
  active: "organization.unfrozen"
} as const satisfies Record<"active" | "frozen", EventType>

export const make = Effect.gen(function* () {
  const { sql, outbox, audit } = yield* Writer
  const revocations = yield* Revocations
  const sessions = yield* Sessions

  const micros = sql`(extract(epoch FROM o.created_at) * 1000000)::bigint`

  const organizations = (conditions: ReadonlyArray<Statement.Fragment>, limit: number) =>
    sql`
      SELECT o.id, o.name, o.slug, o.status, o.revision::text AS revision, o.created_at,
             (SELECT count(*)::int FROM memberships m WHERE m.organization_id = o.id) AS member_count,
             ${micros}::text AS created_micros
      FROM organizations o
      WHERE ${sql.and(conditions)}
      ORDER BY o.created_at DESC, o.id DESC
      LIMIT ${limit}`.pipe(orgRows, Effect.orDie)

  const readOrganization = (organizationId: string) =>
    Effect.flatMap(organizations([sql`o.id = ${organizationId}`], 1), (rows) =>
      rows[0] === undefined
        ? Effect.fail(new NotFound({ message: "No such organization" }))
        : Effect.succeed(toOrganization(rows[0]))
    )

  /** Sets the status; a no-op (no revision, no event, no audit entry) when it already has it. */
  const setStatus = (status: "active" | "frozen") =>
    function* (admin: SignedIn, organizationId: string, meta: RequestMeta) {
      const changed = yield* Effect.gen(function* () {
        // A concurrent change of the status waits for this row lock, then finds nothing to do.
        const rows = yield* sql`
          UPDATE organizations SET status = ${status}, updated_at = now()
          WHERE id = ${organizationId} AND status <> ${status} RETURNING id`
        if (rows.length === 0) return undefined
        const type = statusEvents[status]
        const revision = yield* outbox.record(organizationId, [event(type, { organizationId })])
        yield* audit.record({
          action: type,
          actorId: admin.userId,
          organizationId,
          target: `organization:${organizationId}`,
          data: { before: { status: status === "frozen" ? "active" : "frozen" }, after: { status } },
          meta,
          revision
        })
        return revision
      }).pipe(outbox.transaction)
      const organization = yield* readOrganization(organizationId)
      return new OrganizationStatusChange({ organization, revision: changed ?? organization.revision })
    }

  /**
   * A user's status decides in every organization they belong to: each one's revision moves with
   * it, in organization id order (the order other writers lock them in), so a check at or after it
   * sees the change on every node, like any other.
   */
  const inEachOrganization = (userId: string, type: "user.disabled" | "user.enabled") =>
    Effect.gen(function* () {
      const rows = yield* sql`
        SELECT organization_id::text AS id FROM memberships WHERE user_id = ${userId}
        ORDER BY organization_id`.pipe(idRows)
      for (const { id } of rows) yield* outbox.record(id, [event(type, { userId })])
    }).pipe(Effect.catchTags({ SqlError: Effect.die, NotFound: () => Effect.void }))

  const userExists = (userId: string) =>
    sql`SELECT 1 AS one FROM users WHERE id = ${userId}`.pipe(
      Effect.orDie,
      Effect.flatMap((rows) =>
        rows.length === 0 ? Effect.fail(new NotFound({ message: "No such user" })) : Effect.void
      )
    )

  return Admin.of({
    listOrganizations: Effect.fn("Admin.listOrganizations")(function* (filter) {
      const limit = filter.limit ?? DEFAULT_PAGE_SIZE
      const after = filter.cursor === undefined ? undefined : yield* openCursor(filter.cursor, isOrgPosition)
      const [, afterMicros, afterId] = after === undefined ? [] : (ORG_POSITION.exec(after) ?? [])
      const rows = yield* organizations(
        [
          ...(filter.status === undefined ? [] : [sql`o.status = ${filter.status}`]),
          ...(afterMicros === undefined || afterId === undefined
            ? []
            : [sql`(${micros}, o.id) < (${afterMicros}::bigint, ${afterId}::uuid)`])
        ],
        limit + 1
      )
      const page = rows.slice(0, limit)
      const last = page[page.length - 1]
      const items = page.map(toOrganization)
      return new AdminOrganizationPage(
        rows.length > limit && last !== undefined
          ? { items, nextCursor: makeCursor(`${last.createdMicros}.${last.id}`) }
          : { items }
      )
    }),

    freeze: Effect.fn("Admin.freeze")(setStatus("frozen")),
    unfreeze: Effect.fn("Admin.unfreeze")(setStatus("active")),

    disableUser: Effect.fn("Admin.disableUser")(function* (admin, userId, meta) {
      if (userId === admin.userId) {
        return yield* new Conflict({ code: "cannot_disable_self", message: "You cannot disable your own account" })
      }
      const sessionIds = yield* Effect.gen(function* () {
        // FOR UPDATE waits for a login that is inserting a session (its foreign key locks the
        // user), so that session is committed, and ended below, before this looks.
        const [user] = yield* sql`
          SELECT disabled_at IS NOT NULL AS was_disabled FROM users WHERE id = ${userId} FOR UPDATE`.pipe(userRows)
        if (user === undefined) return yield* new NotFound({ message: "No such user" })
        if (!user.wasDisabled) {
          yield* sql`UPDATE users SET disabled_at = now(), updated_at = now() WHERE id = ${userId}`
          yield* outbox.recordUnscoped([event("user.disabled", { userId })])
          yield* inEachOrganization(userId, "user.disabled")
        }
        // Records `sessions.revoked` in this transaction, after `user.disabled`.
        const ids = yield* sessions.revokeAll(userId, "user_disabled")
        if (!user.wasDisabled || ids.length > 0) {
          yield* audit.record({
            action: "user.disabled",
            actorId: admin.userId,
            target: `user:${userId}`,
            data: { before: { disabled: user.wasDisabled }, after: { disabled: true }, sessionsEnded: ids.length },
            meta
          })
        }
        return ids
      }).pipe(outbox.transaction)
      yield* revocations.revoke(sessionIds, "user_disabled")
      return new UserStatus({ userId, disabled: true })
    }),

    enableUser: Effect.fn("Admin.enableUser")(function* (admin, userId, meta) {
      const enabled = yield* Effect.gen(function* () {
        const rows = yield* sql`
          UPDATE users SET disabled_at = NULL, updated_at = now()
          WHERE id = ${userId} AND disabled_at IS NOT NULL RETURNING id`
        if (rows.length === 0) return false
        yield* outbox.recordUnscoped([event("user.enabled", { userId })])
        yield* inEachOrganization(userId, "user.enabled")
        yield* audit.record({
          action: "user.enabled",
          actorId: admin.userId,
          target: `user:${userId}`,
          data: { before: { disabled: true }, after: { disabled: false } },
          meta
        })
        return true
      }).pipe(outbox.transaction)
      if (!enabled) yield* userExists(userId)
      return new UserStatus({ userId, disabled: false })
    }),

    restoreOwner: Effect.fn("Admin.restoreOwner")(function* (admin, organizationId, userId, meta) {
      const restored = yield* restoreOwner(
        { sql, outbox, audit },
        { actorId: admin.userId, organizationId, userId, meta }
      )
      return new OwnerRestored({ organizationId, userId, ...restored })
    })
  })
})

export const AdminLive = Layer.effect(Admin, make)
