/**
 * Members on Postgres: invitations, memberships and assignments of one organization.
 *
 * Every write that changes what someone may do first locks the organization's row (the lock the
 * revision bump takes, so it orders writers the same way), then checks its rules on what is
 * committed at that moment (membership, the role, the last owner), changes the rows, records its
 * events with `Outbox.record` and writes the audit entry, all in one transaction. Checks the guard
 * cannot make (escalation) run before the transaction.
 */
import { SqlClient } from "@effect/sql"
import { DateTime, Effect, Layer } from "effect"
import { BadRequest, Conflict, Forbidden, NotFound } from "../../rpc/Errors.ts"
import { Invitation, InvitationCreated, InvitationRevoked, Joined } from "../../rpc/Invitations.ts"
import {
  Assignment,
  AssignmentCreated,
  AssignmentDeleted,
  MemberRemoved,
  MemberRole,
  OrganizationMember
} from "../../rpc/Members.ts"
import { AuditLog } from "../../services/AuditLog.ts"
import { event } from "../../services/Events.ts"
import { Mailer } from "../../services/Mailer.ts"
import { Members } from "../../services/Members.ts"
import { Outbox } from "../../services/Outbox.ts"
import { PermissionStore } from "../../services/PermissionStore.ts"
import { normalizeEmail, utc } from "../auth/AuthSupport.ts"
import * as Secrets from "../Secrets.ts"
import { Settings } from "../Settings.ts"

interface InvitationRow {
  readonly id: string
  readonly email: string
  readonly roleIds: ReadonlyArray<string>
  readonly expiresAt: Date
  readonly createdAt: Date
}

interface AssignmentRow {
  readonly id: string
  readonly userId: string
  readonly roleId: string
  readonly roleName: string
  readonly scopeType: string | null
  readonly scopeId: string | null
  readonly expiresAt: Date | null
  readonly grantedBy: string | null
  readonly createdAt: Date
  /** An unexpired, organization-wide assignment of the system role `owner`. */
  readonly liveOwner: boolean
}

const noSuchInvitation = new NotFound({ message: "No such invitation, or it has expired or been used" })
const wrongAddress = new Forbidden({ message: "This invitation was sent to another address" })
const noSuchMember = new NotFound({ message: "No such member" })
const noSuchRole = new NotFound({ message: "No such role" })
const noSuchAssignment = new NotFound({ message: "No such assignment" })
const alreadyMember = new Conflict({ code: "already_member", message: "Already a member of this organization" })
const lastOwner = new Conflict({
  code: "last_owner",
  message: "The organization must keep an owner: give the owner role to someone else first"
})

const toInvitation = (row: InvitationRow) =>
  new Invitation({ ...row, expiresAt: utc(row.expiresAt), createdAt: utc(row.createdAt) })

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

/** Organization names are free text: keep them on one line in a mail header. */
const oneLine = (text: string) => text.replace(/[\p{Cc}]+/gu, " ")

export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const outbox = yield* Outbox
  const audit = yield* AuditLog
  const store = yield* PermissionStore
  const mailer = yield* Mailer
  const publicUrl = yield* Settings.publicUrl

  /**
   * Takes the organization's row lock (the one `Outbox.record` takes) for the rest of the
   * transaction, so the rules below are checked on what is committed once earlier writers are done.
   */
  const lock = (organizationId: string) =>
    sql`SELECT 1 FROM organizations WHERE id = ${organizationId} FOR NO KEY UPDATE`.pipe(
      Effect.flatMap((rows) => (rows.length === 0 ? new NotFound({ message: "No such organization" }) : Effect.void))
    )

  /** Refuses to give roles whose permissions the actor does not hold (403 naming the first one). */
  const refuseEscalation = (organizationId: string, actorId: string, roleIds: ReadonlyArray<string>) =>
    roleIds.length === 0
      ? Effect.void
      : Effect.flatMap(store.notHeldBy(organizationId, actorId, { roleIds }), (key) =>
          key === undefined
            ? Effect.void
            : Effect.fail(new Forbidden({ message: `You cannot give ${key}: you do not hold it` }))
        )

  const selectAssignments = (organizationId: string) => sql`
    SELECT a.id::text AS id, a.user_id::text AS user_id, a.role_id::text AS role_id, r.name AS role_name,
      a.scope_type, a.scope_id, a.expires_at, a.granted_by::text AS granted_by, a.created_at,
      (r.is_system AND r.name = 'owner' AND a.scope_type IS NULL
        AND (a.expires_at IS NULL OR a.expires_at > now())) AS live_owner
    FROM assignments a JOIN roles r ON r.organization_id = a.organization_id AND r.id = a.role_id
    WHERE a.organization_id = ${organizationId}`

  /** Unexpired organization-wide owner assignments other than the ones being removed. */
  const otherOwners = (organizationId: string, except: { userId?: string; assignmentId?: string }) =>
    sql<{ count: number }>`
      SELECT count(*)::int AS count
      FROM assignments a JOIN roles r ON r.organization_id = a.organization_id AND r.id = a.role_id
      WHERE a.organization_id = ${organizationId} AND r.is_system AND r.name = 'owner' AND a.scope_type IS NULL
        AND (a.expires_at IS NULL OR a.expires_at > now())
        AND a.user_id IS DISTINCT FROM ${except.userId ?? null}::uuid
        AND a.id IS DISTINCT FROM ${except.assignmentId ?? null}::uuid`.pipe(Effect.map((rows) => rows[0]?.count ?? 0))

  return Members.of({
    invite: Effect.fn("Members.invite")(function* (member, input, meta) {
      const organizationId = member.organizationId
      const email = normalizeEmail(input.email)
      const roleIds = [...new Set(input.roleIds ?? [])]
      if (roleIds.length > 0) {
        const found = yield* sql`
          SELECT id FROM roles WHERE organization_id = ${organizationId} AND id = ANY(${roleIds}::uuid[])`.pipe(
          Effect.orDie
        )
        if (found.length !== roleIds.length) return yield* noSuchRole
      }
      yield* refuseEscalation(organizationId, member.userId, roleIds)
      const token = Secrets.newToken()
      const { invitation, organizationName } = yield* Effect.gen(function* () {
        const [org] = yield* sql<{ name: string }>`SELECT name FROM organizations WHERE id = ${organizationId}`
        if (org === undefined) return yield* new NotFound({ message: "No such organization" })
        const members = yield* sql`
          SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id
          WHERE m.organization_id = ${organizationId} AND lower(u.email) = ${email}`
        if (members.length > 0) return yield* alreadyMember
        const [row] = yield* sql<InvitationRow>`
          INSERT INTO invitations (token_hash, organization_id, email, role_ids, invited_by, expires_at)
          VALUES (${Secrets.sha256(token)}, ${organizationId}, ${email}, ${roleIds}::uuid[], ${member.userId},
                  now() + interval '7 days')
          RETURNING id::text AS id, email, role_ids::text[] AS role_ids, expires_at, created_at`
        const invitation = toInvitation(row!)
        yield* audit.record({
          action: "invitation.created",
          actorId: member.userId,
          organizationId,
          target: `invitation:${invitation.id}`,
          data: { after: { email, roleIds, expiresAt: row!.expiresAt.toISOString() } },
          meta
        })
        return { invitation, organizationName: org.name }
      }).pipe(sql.withTransaction, Effect.catchTag("SqlError", Effect.die))
      const name = oneLine(organizationName)
      yield* mailer.send({
        to: email,
        subject: `Invitation to join ${name}`,
        text:
          `You are invited to join ${name}.\n\n` +
          "Sign in (or create an account) with this email address, then accept the invitation with this " +
          `token (valid 7 days, usable once):\n\n${token}\n\n${publicUrl}/invitations/accept?token=${token}\n\n` +
          "If you did not expect this invitation, you can ignore this message.\n"
      })
      return new InvitationCreated({ invitation })
    }),

    invitations: Effect.fn("Members.invitations")(function* (member) {
      // Roles deleted since the invitation was sent are left out: accepting skips them too.
      const rows = yield* sql<InvitationRow>`
        SELECT i.id::text AS id, i.email, i.expires_at, i.created_at,
          ARRAY(SELECT r.id::text FROM unnest(i.role_ids) WITH ORDINALITY AS g(role_id, n)
                JOIN roles r ON r.organization_id = i.organization_id AND r.id = g.role_id ORDER BY g.n) AS role_ids
        FROM invitations i
        WHERE i.organization_id = ${member.organizationId}
          AND i.accepted_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > now()
        ORDER BY i.created_at, i.id`.pipe(Effect.orDie)
      return rows.map(toInvitation)
    }),

    revokeInvitation: Effect.fn("Members.revokeInvitation")(function* (member, invitationId, meta) {
      yield* Effect.gen(function* () {
        const [revoked] = yield* sql<{ email: string; roleIds: ReadonlyArray<string> }>`
          UPDATE invitations SET revoked_at = now()
          WHERE organization_id = ${member.organizationId} AND id = ${invitationId}
            AND accepted_at IS NULL AND revoked_at IS NULL
          RETURNING email, role_ids::text[] AS role_ids`
        if (revoked === undefined) return yield* new NotFound({ message: "No such invitation" })
        yield* audit.record({
          action: "invitation.revoked",
          actorId: member.userId,
          organizationId: member.organizationId,
          target: `invitation:${invitationId}`,
          data: { before: { email: revoked.email, roleIds: revoked.roleIds }, after: { revoked: true } },
          meta
        })
      }).pipe(sql.withTransaction, Effect.catchTag("SqlError", Effect.die))
      return new InvitationRevoked({ revoked: true })
    }),

    accept: Effect.fn("Members.accept")(function* (user, token, meta) {
      const tokenHash = Secrets.sha256(token)
      const outcome = yield* Effect.gen(function* () {
        const [found] = yield* sql<{ organizationId: string }>`
          SELECT organization_id::text AS organization_id FROM invitations WHERE token_hash = ${tokenHash}`
        if (found === undefined) return yield* noSuchInvitation
        const organizationId = found.organizationId
        yield* lock(organizationId).pipe(Effect.catchTag("NotFound", () => noSuchInvitation))
        // One statement decides: of two parallel accepts, the second finds it used.
        const [invitation] = yield* sql<{ id: string; roleIds: ReadonlyArray<string>; invitedBy: string | null }>`
          UPDATE invitations i SET accepted_at = now()
          FROM users u
          WHERE i.token_hash = ${tokenHash} AND i.accepted_at IS NULL AND i.revoked_at IS NULL
            AND i.expires_at > now() AND u.id = ${user.userId} AND lower(u.email) = lower(i.email)
          RETURNING i.id::text AS id, i.role_ids::text[] AS role_ids, i.invited_by::text AS invited_by`
        if (invitation === undefined) {
          // Not consumed: a valid invitation for another address stays usable by its addressee.
          const pending = yield* sql`
            SELECT 1 FROM invitations
            WHERE token_hash = ${tokenHash} AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now()`
          return yield* pending.length > 0 ? wrongAddress : noSuchInvitation
        }
        const target = `invitation:${invitation.id}`
        const joined = yield* sql`
          INSERT INTO memberships (organization_id, user_id) VALUES (${organizationId}, ${user.userId})
          ON CONFLICT DO NOTHING RETURNING user_id`
        if (joined.length === 0) {
          // Used up all the same, so it cannot serve to come back after a later removal.
          yield* audit.record({
            action: "invitation.accepted",
            actorId: user.userId,
            organizationId,
            target,
            data: { after: { userId: user.userId, alreadyMember: true } },
            meta
          })
          return undefined
        }
        // Roles deleted since the invitation was sent are skipped.
        const given = yield* sql<{ id: string; roleId: string; roleName: string }>`
          INSERT INTO assignments (organization_id, user_id, role_id, granted_by)
          SELECT r.organization_id, ${user.userId}, r.id, ${invitation.invitedBy}::uuid FROM roles r
          WHERE r.organization_id = ${organizationId} AND r.id = ANY(${invitation.roleIds}::uuid[])
          RETURNING id::text AS id, role_id::text AS role_id,
            (SELECT name FROM roles WHERE id = role_id) AS role_name`
        const revision = yield* outbox.record(organizationId, [
          event("member.added", { userId: user.userId }),
          ...given.map(({ id, roleId }) => event("assignment.added", { assignmentId: id, userId: user.userId, roleId }))
        ])
        const roles = given.map((row) => row.roleName).sort()
        yield* audit.record({
          action: "invitation.accepted",
          actorId: user.userId,
          organizationId,
          target,
          data: { after: { userId: user.userId, roles } },
          meta,
          revision
        })
        return new Joined({ organizationId, roles, revision })
      }).pipe(outbox.transaction)
      if (outcome === undefined) return yield* alreadyMember
      return outcome
    }),

    list: Effect.fn("Members.list")(function* (member) {
      const [people, held] = yield* Effect.all([
        sql<{ userId: string; email: string; name: string; joinedAt: Date }>`
          SELECT m.user_id::text AS user_id, u.email, u.name, m.created_at AS joined_at
          FROM memberships m JOIN users u ON u.id = m.user_id
          WHERE m.organization_id = ${member.organizationId}
          ORDER BY m.created_at, m.user_id`,
        sql<AssignmentRow>`
          ${selectAssignments(member.organizationId)} AND (a.expires_at IS NULL OR a.expires_at > now())
          ORDER BY r.name, a.created_at, a.id`
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
        const [removed] = yield* sql<{ email: string }>`
          SELECT u.email FROM memberships m JOIN users u ON u.id = m.user_id
          WHERE m.organization_id = ${organizationId} AND m.user_id = ${userId}`
        if (removed === undefined) return yield* noSuchMember
        const held = yield* sql<AssignmentRow>`${selectAssignments(organizationId)} AND a.user_id = ${userId}`
        if (held.some((row) => row.liveOwner) && (yield* otherOwners(organizationId, { userId })) === 0) {
          return yield* lastOwner
        }
        // Their assignments go with the membership (ON DELETE CASCADE).
        yield* sql`DELETE FROM memberships WHERE organization_id = ${organizationId} AND user_id = ${userId}`
        // An invitation still pending for them would let them straight back in.
        yield* sql`
          UPDATE invitations SET revoked_at = now()
          WHERE organization_id = ${organizationId} AND lower(email) = lower(${removed.email})
            AND accepted_at IS NULL AND revoked_at IS NULL`
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
      const rows = yield* sql<AssignmentRow>`
        ${selectAssignments(member.organizationId)}
          AND (${filter.userId ?? null}::uuid IS NULL OR a.user_id = ${filter.userId ?? null}::uuid)
          AND (${filter.roleId ?? null}::uuid IS NULL OR a.role_id = ${filter.roleId ?? null}::uuid)
          AND (${filter.includeExpired === true} OR a.expires_at IS NULL OR a.expires_at > now())
        ORDER BY a.created_at, a.id`.pipe(Effect.orDie)
      return rows.map(toAssignment)
    }),

    assign: Effect.fn("Members.assign")(function* (member, input, meta) {
      const organizationId = member.organizationId
      if (input.expiresAt !== undefined && DateTime.lessThanOrEqualTo(input.expiresAt, yield* DateTime.now)) {
        return yield* new BadRequest({ code: "invalid_payload", message: "expiresAt must be in the future" })
      }
      // A role of another organization gives nothing here, so it passes; the 404 below refuses it.
      yield* refuseEscalation(organizationId, member.userId, [input.roleId])
      return yield* Effect.gen(function* () {
        yield* lock(organizationId)
        const isMember = yield* sql`
          SELECT 1 FROM memberships WHERE organization_id = ${organizationId} AND user_id = ${input.userId}`
        if (isMember.length === 0) return yield* noSuchMember
        const role = yield* sql`SELECT 1 FROM roles WHERE organization_id = ${organizationId} AND id = ${input.roleId}`
        if (role.length === 0) return yield* noSuchRole
        const expiresAt = input.expiresAt === undefined ? null : DateTime.toDate(input.expiresAt)
        const [inserted] = yield* sql<{ id: string }>`
          INSERT INTO assignments (organization_id, user_id, role_id, scope_type, scope_id, expires_at, granted_by)
          VALUES (${organizationId}, ${input.userId}, ${input.roleId}, ${input.scope?.type ?? null},
                  ${input.scope?.id ?? null}, ${expiresAt}, ${member.userId})
          ON CONFLICT DO NOTHING RETURNING id::text AS id`
        if (inserted === undefined) {
          return yield* new Conflict({
            code: "already_assigned",
            message: "The member already has this role on this scope"
          })
        }
        const [row] = yield* sql<AssignmentRow>`${selectAssignments(organizationId)} AND a.id = ${inserted.id}`
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
        const [row] = yield* sql<AssignmentRow>`${selectAssignments(organizationId)} AND a.id = ${assignmentId}`
        if (row === undefined) return yield* noSuchAssignment
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
