import { DateTime, Effect, Layer, Schema } from "effect"
import { SYSTEM_ROLES } from "../../domain/Catalog.ts"
import { Conflict } from "../../rpc/Errors.ts"
import { MyOrganization, Organization } from "../../rpc/Orgs.ts"
import { event } from "../../services/Events.ts"
import { Organizations } from "../../services/Organizations.ts"
import { decodeRows } from "../Sql.ts"
import { Writer } from "./RbacSql.ts"

const Status = Schema.Literal("active", "frozen")
const OrgRow = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  slug: Schema.String,
  status: Status,
  revision: Schema.String,
  createdAt: Schema.DateFromSelf
})
const MyOrgRow = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  slug: Schema.String,
  status: Status,
  roles: Schema.Array(Schema.String)
})
const Id = Schema.Struct({ id: Schema.String })
const ids = decodeRows(Id)

const toOrganization = (row: typeof OrgRow.Type) =>
  new Organization({ ...row, createdAt: DateTime.unsafeFromDate(row.createdAt) })

export const make = Effect.gen(function* () {
  const { sql, outbox, audit } = yield* Writer

  const read = (organizationId: string) =>
    sql`
      SELECT id, name, slug, status, revision::text AS revision, created_at FROM organizations WHERE id = ${organizationId}`.pipe(
      decodeRows(OrgRow),
      Effect.flatMap((rows) => (rows[0] === undefined ? Effect.die("organization vanished") : Effect.succeed(rows[0]))),
      Effect.map(toOrganization)
    )

  return Organizations.of({
    create: Effect.fn("Organizations.create")(function* (user, { name, slug }, meta) {
      const created = yield* Effect.gen(function* () {
        const [org] = yield* sql`
            INSERT INTO organizations (slug, name) VALUES (${slug}, ${name})
            ON CONFLICT (slug) DO NOTHING RETURNING id`.pipe(ids)
        if (org === undefined) return undefined
        yield* sql`INSERT INTO memberships (organization_id, user_id) VALUES (${org.id}, ${user.userId})`
        let ownerRoleId = ""
        for (const role of SYSTEM_ROLES) {
          const [row] = yield* sql`
              INSERT INTO roles (organization_id, name, description, is_system)
              VALUES (${org.id}, ${role.name}, ${role.description}, true) RETURNING id`.pipe(ids)
          if (role.name === "owner") ownerRoleId = row!.id
          for (const grant of role.grants) {
            yield* sql`
                INSERT INTO role_grants (organization_id, role_id, permission, effect)
                VALUES (${org.id}, ${row!.id}, ${grant.permission}, ${grant.effect})`
          }
        }
        const [assignment] = yield* sql`
            INSERT INTO assignments (organization_id, user_id, role_id, granted_by)
            VALUES (${org.id}, ${user.userId}, ${ownerRoleId}, ${user.userId}) RETURNING id`.pipe(ids)
        yield* outbox.record(org.id, [
          event("organization.created", { organizationId: org.id, ownerId: user.userId }),
          event("assignment.added", { assignmentId: assignment!.id, userId: user.userId, roleId: ownerRoleId })
        ])
        return org.id
      }).pipe(outbox.transaction, Effect.orDie)
      if (created === undefined) {
        return yield* new Conflict({ code: "slug_taken", message: `The slug "${slug}" is taken` })
      }
      yield* audit.record({ action: "organization.created", actorId: user.userId, organizationId: created, meta })
      return yield* read(created).pipe(Effect.orDie)
    }),

    list: Effect.fn("Organizations.list")((user) =>
      sql`
        SELECT o.id, o.name, o.slug, o.status,
               coalesce(array_agg(DISTINCT r.name) FILTER (WHERE r.name IS NOT NULL), '{}') AS roles
        FROM memberships m
        JOIN organizations o ON o.id = m.organization_id
        LEFT JOIN assignments a ON a.organization_id = m.organization_id AND a.user_id = m.user_id
             AND a.scope_type IS NULL AND (a.expires_at IS NULL OR a.expires_at > now())
        LEFT JOIN roles r ON r.id = a.role_id
        WHERE m.user_id = ${user.userId}
        GROUP BY o.id ORDER BY o.name`.pipe(
        decodeRows(MyOrgRow),
        Effect.map((rows) => rows.map((row) => new MyOrganization({ ...row, roles: [...row.roles].sort() }))),
        Effect.orDie
      )
    ),

    get: Effect.fn("Organizations.get")((member) => read(member.organizationId).pipe(Effect.orDie)),

    update: Effect.fn("Organizations.update")(function* (member, { name }, meta) {
      if (name !== undefined) {
        yield* sql`UPDATE organizations SET name = ${name}, updated_at = now() WHERE id = ${member.organizationId}`
        yield* audit.record({
          action: "organization.updated",
          actorId: member.userId,
          organizationId: member.organizationId,
          data: { name },
          meta
        })
      }
      return yield* read(member.organizationId)
    }, Effect.orDie),

    remove: Effect.fn("Organizations.remove")(function* (member, meta) {
      yield* Effect.gen(function* () {
        yield* outbox.record(member.organizationId, [
          event("organization.deleted", { organizationId: member.organizationId })
        ])
        yield* sql`DELETE FROM organizations WHERE id = ${member.organizationId}`
      }).pipe(
        outbox.transaction,
        // Deleted meanwhile by someone else: the caller's wish is fulfilled.
        Effect.catchTag("NotFound", () => Effect.void)
      )
      yield* audit.record({
        action: "organization.deleted",
        actorId: member.userId,
        organizationId: member.organizationId,
        meta
      })
    }, Effect.orDie)
  })
})

export const OrganizationsLive = Layer.effect(Organizations, make)
