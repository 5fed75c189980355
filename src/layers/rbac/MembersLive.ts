/**
 * Members on Postgres: memberships and assignments of one organization.
 *
 * Every write that changes what someone may do first locks the organization's row (the lock the
 * revision bump takes, so it orders writers the same way), then checks its rules on what is
 * committed at that moment (membership, the role, the last owner, and who may change whose access:
 * domain/Authority.ts), changes the rows, records its events with `Outbox.record` and writes the
 * audit entry, all in one transaction.
 */
import { DateTime, Effect, Layer, Schema } from "effect"
import { refuseAssign, refuseRemoveMember, refuseUnassign } from "../../domain/Authority.ts"
import { BadRequest, Conflict, NotFound } from "../../rpc/Errors.ts"
import {
  Assignment,
  AssignmentCreated,
  AssignmentDeleted,
  MemberRemoved,
  MemberRole,
  OrganizationMember
} from "../../rpc/Members.ts"
import { event } from "../../services/Events.ts"
import { Members } from "../../services/Members.ts"
import { decodeRows } from "../Sql.ts"
import { revokePendingInvitations } from "./InvitationsLive.ts"
import { lockOrganization, readAuthority, refuse, Writer } from "./RbacSql.ts"

const AssignmentRow = Schema.Struct({
  id: Schema.String,
  userId: Schema.String,
  roleId: Schema.String,
  roleName: Schema.String,
  scopeType: Schema.NullOr(Schema.String),
  scopeId: Schema.NullOr(Schema.String),
  expiresAt: Schema.NullOr(Schema.DateFromSelf),
  grantedBy: Schema.NullOr(Schema.String),
  createdAt: Schema.DateFromSelf,
  /** An unexpired, organization-wide assignment of the system role `owner`. */
  liveOwner: Schema.Boolean
})
type AssignmentRow = typeof AssignmentRow.Type
const assignmentRows = decodeRows(AssignmentRow)

const Person = Schema.Struct({
  userId: Schema.String,
  email: Schema.String,
  name: Schema.String,
  joinedAt: Schema.DateFromSelf
})
const Email = Schema.Struct({ email: Schema.String })
const Id = Schema.Struct({ id: Schema.String })
const Count = Schema.Struct({ count: Schema.Number })

const noSuchMember = new NotFound({ message: "No such member" })
const noSuchRole = new NotFound({ message: "No such role" })
const noSuchAssignment = new NotFound({ message: "No such assignment" })
const lastOwner = new Conflict({
  code: "last_owner",
  message: "The organization must keep an owner: give the owner role to someone else first"
})

const utc = (date: Date) => DateTime.unsafeFromDate(date)

const scopeOf = (row: AssignmentRow) =>
  row.scopeType === null || row.scopeId === null ? undefined : { type: row.scopeType, id: row.scopeId }

const toAssignment = (row: AssignmentRow) => {
  const scope = scopeOf(row)
  return new Assignment({
    id: row.id,
    userId: row.userId,
    roleId: row.roleId,
    roleName: row.roleName,
    ...(scope === undefined ? {} : { scope }),
    ...(row.expiresAt === null ? {} : { expiresAt: utc(row.expiresAt) }),
    grantedBy: row.grantedBy,
    createdAt: utc(row.createdAt)
  })
}

/** The ids an `assignment.*` event carries. */
const assignmentEvent = (row: AssignmentRow) => {
  const scope = scopeOf(row)
  return { assignmentId: row.id, userId: row.userId, roleId: row.roleId, ...(scope === undefined ? {} : { scope }) }
}

/** What an audit entry says about an assignment. */
const summary = (row: AssignmentRow) => ({
  ...assignmentEvent(row),
  roleName: row.roleName,
  expiresAt: row.expiresAt?.toISOString() ?? null
})

export const make = Effect.gen(function* () {
  const { sql, outbox, audit } = yield* Writer

  const lock = (organizationId: string) => lockOrganization(sql, organizationId)

  const selectAssignments = (organizationId: string) => sql`
    SELECT a.id::text AS id, a.user_id::text AS user_id, a.role_id::text AS role_id, r.name AS role_name,
      a.scope_type, a.scope_id, a.expires_at, a.granted_by::text AS granted_by, a.created_at,
      (r.is_system AND r.name = 'owner' AND a.scope_type IS NULL
        AND (a.expires_at IS NULL OR a.expires_at > now())) AS live_owner
    FROM assignments a JOIN roles r ON r.organization_id = a.organization_id AND r.id = a.role_id
    WHERE a.organization_id = ${organizationId}`

  /** Unexpired organization-wide owner assignments other than the ones being removed. */
  const otherOwners = (organizationId: string, except: { userId?: string; assignmentId?: string }) =>
    sql`
      SELECT count(*)::int AS count
      FROM assignments a JOIN roles r ON r.organization_id = a.organization_id AND r.id = a.role_id
      WHERE a.organization_id = ${organizationId} AND r.is_system AND r.name = 'owner' AND a.scope_type IS NULL
        AND (a.expires_at IS NULL OR a.expires_at > now())
        AND a.user_id IS DISTINCT FROM ${except.userId ?? null}::uuid
        AND a.id IS DISTINCT FROM ${except.assignmentId ?? null}::uuid`.pipe(
      decodeRows(Count),
      Effect.map((rows) => rows[0]?.count ?? 0)
    )

  return Members.of({
    list: Effect.fn("Members.list")(function* (member) {
      const [people, held] = yield* Effect.all([
        sql`
          SELECT m.user_id::text AS user_id, u.email, u.name, m.created_at AS joined_at
          FROM memberships m JOIN users u ON u.id = m.user_id
          WHERE m.organization_id = ${member.organizationId}
          ORDER BY m.created_at, m.user_id`.pipe(decodeRows(Person)),
        sql`
          ${selectAssignments(member.organizationId)} AND (a.expires_at IS NULL OR a.expires_at > now())
          ORDER BY r.name, a.created_at, a.id`.pipe(assignmentRows)
      ]).pipe(Effect.orDie)
      const rolesOf = new Map<string, Array<MemberRole>>()
      for (const row of held) {
        const scope = scopeOf(row)
        const role = new MemberRole({
          assignmentId: row.id,
          roleId: row.roleId,
          name: row.roleName,
          ...(scope === undefined ? {} : { scope }),
          ...(row.expiresAt === null ? {} : { expiresAt: utc(row.expiresAt) })
        })
        rolesOf.set(row.userId, [...(rolesOf.get(row.userId) ?? []), role])
      }
      return people.map(
        (person) =>
          new OrganizationMember({ ...person, joinedAt: utc(person.joinedAt), roles: rolesOf.get(person.userId) ?? [] })
      )
    }),

    remove: Effect.fn("Members.remove")(function* (member, userId, meta) {
      const organizationId = member.organizationId
      return yield* Effect.gen(function* () {
        yield* lock(organizationId)
        const [removed] = yield* sql`
          SELECT u.email FROM memberships m JOIN users u ON u.id = m.user_id
          WHERE m.organization_id = ${organizationId} AND m.user_id = ${userId}`.pipe(decodeRows(Email))
        if (removed === undefined) return yield* noSuchMember
        yield* refuse(refuseRemoveMember(yield* readAuthority(sql, organizationId), member.userId, userId))
        const held = yield* sql`${selectAssignments(organizationId)} AND a.user_id = ${userId}`.pipe(assignmentRows)
        if (held.some((row) => row.liveOwner) && (yield* otherOwners(organizationId, { userId })) === 0) {
          return yield* lastOwner
        }
        // Their assignments go with the membership (ON DELETE CASCADE).
        yield* sql`DELETE FROM memberships WHERE organization_id = ${organizationId} AND user_id = ${userId}`
        // An invitation still pending for them would let them straight back in.
        yield* revokePendingInvitations(sql, organizationId, removed.email)
        const revision = yield* outbox.record(organizationId, [
          event("member.removed", { userId }),
          ...held.map((row) => event("assignment.removed", assignmentEvent(row)))
        ])
        yield* audit.record({
          action: "member.removed",
          actorId: member.userId,
          organizationId,
          target: `user:${userId}`,
          data: { before: { userId, email: removed.email, assignments: held.map(summary) }, after: null },
          meta,
          revision
        })
        return new MemberRemoved({ removed: true, revision })
      }).pipe(outbox.transaction)
    }),

    assignments: Effect.fn("Members.assignments")(function* (member, filter) {
      const rows = yield* sql`
        ${selectAssignments(member.organizationId)}
          AND (${filter.userId ?? null}::uuid IS NULL OR a.user_id = ${filter.userId ?? null}::uuid)
          AND (${filter.roleId ?? null}::uuid IS NULL OR a.role_id = ${filter.roleId ?? null}::uuid)
          AND (${filter.includeExpired === true} OR a.expires_at IS NULL OR a.expires_at > now())
        ORDER BY a.created_at, a.id`.pipe(assignmentRows, Effect.orDie)
      return rows.map(toAssignment)
    }),

    assign: Effect.fn("Members.assign")(function* (member, input, meta) {
      const organizationId = member.organizationId
      if (input.expiresAt !== undefined && DateTime.lessThanOrEqualTo(input.expiresAt, yield* DateTime.now)) {
        return yield* new BadRequest({ code: "invalid_payload", message: "expiresAt must be in the future" })
      }
      return yield* Effect.gen(function* () {
        yield* lock(organizationId)
        const isMember = yield* sql`
          SELECT 1 FROM memberships WHERE organization_id = ${organizationId} AND user_id = ${input.userId}`
        if (isMember.length === 0) return yield* noSuchMember
        const role = yield* sql`SELECT 1 FROM roles WHERE organization_id = ${organizationId} AND id = ${input.roleId}`
        if (role.length === 0) return yield* noSuchRole
        const expiresAt = input.expiresAt === undefined ? null : DateTime.toDate(input.expiresAt)
        yield* refuse(
          refuseAssign(yield* readAuthority(sql, organizationId), member.userId, {
            userId: input.userId,
            roleId: input.roleId,
            scope: input.scope,
            expiresAt: expiresAt?.getTime()
          })
        )
        const [inserted] = yield* sql`
          INSERT INTO assignments (organization_id, user_id, role_id, scope_type, scope_id, expires_at, granted_by)
          VALUES (${organizationId}, ${input.userId}, ${input.roleId}, ${input.scope?.type ?? null},
                  ${input.scope?.id ?? null}, ${expiresAt}, ${member.userId})
          ON CONFLICT DO NOTHING RETURNING id::text AS id`.pipe(decodeRows(Id))
        if (inserted === undefined) {
          return yield* new Conflict({
            code: "already_assigned",
            message: "The member already has this role on this scope"
          })
        }
        const [row] = yield* sql`${selectAssignments(organizationId)} AND a.id = ${inserted.id}`.pipe(assignmentRows)
        const revision = yield* outbox.record(organizationId, [event("assignment.added", assignmentEvent(row!))])
        yield* audit.record({
          action: "assignment.created",
          actorId: member.userId,
          organizationId,
          target: `assignment:${inserted.id}`,
          data: { before: null, after: summary(row!) },
          meta,
          revision
        })
        return new AssignmentCreated({ assignment: toAssignment(row!), revision })
      }).pipe(outbox.transaction)
    }),

    unassign: Effect.fn("Members.unassign")(function* (member, assignmentId, meta) {
      const organizationId = member.organizationId
      return yield* Effect.gen(function* () {
        yield* lock(organizationId)
        const [row] = yield* sql`${selectAssignments(organizationId)} AND a.id = ${assignmentId}`.pipe(assignmentRows)
        if (row === undefined) return yield* noSuchAssignment
        yield* refuse(
          refuseUnassign(yield* readAuthority(sql, organizationId), member.userId, {
            id: row.id,
            userId: row.userId,
            roleId: row.roleId,
            scope: scopeOf(row),
            expiresAt: row.expiresAt?.getTime()
          })
        )
        if (row.liveOwner && (yield* otherOwners(organizationId, { assignmentId })) === 0) return yield* lastOwner
        yield* sql`DELETE FROM assignments WHERE organization_id = ${organizationId} AND id = ${assignmentId}`
        const revision = yield* outbox.record(organizationId, [event("assignment.removed", assignmentEvent(row))])
        yield* audit.record({
          action: "assignment.deleted",
          actorId: member.userId,
          organizationId,
          target: `assignment:${assignmentId}`,
          data: { before: summary(row), after: null },
          meta,
          revision
        })
        return new AssignmentDeleted({ deleted: true, revision })
      }).pipe(outbox.transaction)
    })
  })
})

export const MembersLive = Layer.effect(Members, make)
