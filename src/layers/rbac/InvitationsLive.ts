/**
 * Invitations on Postgres. Creating one checks the roles and the inviter's right to give them (to
 * a newcomer, organization-wide and for ever: domain/Authority.ts) and mails the token after it
 * commits; accepting locks the organization's row (the lock the revision bump takes), consumes the
 * invitation in one statement, and adds the membership and the roles the inviter may still give,
 * with their events (`Outbox.record`) and audit entry, in one transaction.
 */
import type { SqlClient } from "@effect/sql"
import { DateTime, Effect, Layer, Schema } from "effect"
import { refuseAssign } from "../../domain/Authority.ts"
import { Conflict, Forbidden, NotFound } from "../../rpc/Errors.ts"
import { Invitation, InvitationCreated, InvitationRevoked, Joined } from "../../rpc/Invitations.ts"
import { event } from "../../services/Events.ts"
import { Invitations } from "../../services/Invitations.ts"
import { Mailer } from "../../services/Mailer.ts"
import * as Secrets from "../Secrets.ts"
import { Settings } from "../Settings.ts"
import { decodeRows } from "../Sql.ts"
import { lockOrganization, readAuthority, refuse, Writer } from "./RbacSql.ts"

const InvitationRow = Schema.Struct({
  id: Schema.String,
  email: Schema.String,
  roleIds: Schema.Array(Schema.String),
  expiresAt: Schema.DateFromSelf,
  createdAt: Schema.DateFromSelf
})
const Name = Schema.Struct({ name: Schema.String })
const Revoked = Schema.Struct({ email: Schema.String, roleIds: Schema.Array(Schema.String) })
const Found = Schema.Struct({ organizationId: Schema.String })
const Consumed = Schema.Struct({
  id: Schema.String,
  roleIds: Schema.Array(Schema.String),
  invitedBy: Schema.NullOr(Schema.String)
})
const Given = Schema.Struct({ id: Schema.String, roleId: Schema.String, roleName: Schema.String })

const noSuchInvitation = new NotFound({ message: "No such invitation, or it has expired or been used" })
const wrongAddress = new Forbidden({ message: "This invitation was sent to another address" })
const alreadyMember = new Conflict({ code: "already_member", message: "Already a member of this organization" })

/** Addresses are compared without regard to case or surrounding spaces. */
const normalizeEmail = (email: string) => email.trim().toLowerCase()

const toInvitation = (row: typeof InvitationRow.Type) =>
  new Invitation({
    ...row,
    expiresAt: DateTime.unsafeFromDate(row.expiresAt),
    createdAt: DateTime.unsafeFromDate(row.createdAt)
  })

/** Organization names are free text: keep them on one line in a mail header. */
const oneLine = (text: string) => text.replace(/[\p{Cc}]+/gu, " ")

/**
 * Revokes the invitations still pending in the organization for `email`, in the caller's
 * transaction: removing a member does, so a pending one cannot bring them straight back.
 */
export const revokePendingInvitations = (sql: SqlClient.SqlClient, organizationId: string, email: string) =>
  sql`
    UPDATE invitations SET revoked_at = now()
    WHERE organization_id = ${organizationId} AND lower(email) = lower(${email})
      AND accepted_at IS NULL AND revoked_at IS NULL`.pipe(Effect.asVoid)

export const make = Effect.gen(function* () {
  const { sql, outbox, audit } = yield* Writer
  const mailer = yield* Mailer
  const publicUrl = yield* Settings.publicUrl

  return Invitations.of({
    create: Effect.fn("Invitations.create")(function* (member, input, meta) {
      const organizationId = member.organizationId
      const email = normalizeEmail(input.email)
      const roleIds = [...new Set(input.roleIds ?? [])]
      if (roleIds.length > 0) {
        const found = yield* sql`
          SELECT id FROM roles WHERE organization_id = ${organizationId} AND id = ANY(${roleIds}::uuid[])`.pipe(
          Effect.orDie
        )
        if (found.length !== roleIds.length) return yield* new NotFound({ message: "No such role" })
        // The newcomer is nobody yet: no owner, no roles. The check reads committed rows without a lock.
        const org = yield* readAuthority(sql, organizationId)
        for (const roleId of roleIds) yield* refuse(refuseAssign(org, member.userId, { userId: "", roleId }))
      }
      const token = Secrets.newToken()
      const { invitation, organizationName } = yield* Effect.gen(function* () {
        const [org] = yield* sql`SELECT name FROM organizations WHERE id = ${organizationId}`.pipe(decodeRows(Name))
        if (org === undefined) return yield* new NotFound({ message: "No such organization" })
        const members = yield* sql`
          SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id
          WHERE m.organization_id = ${organizationId} AND lower(u.email) = ${email}`
        if (members.length > 0) return yield* alreadyMember
        const [row] = yield* sql`
          INSERT INTO invitations (token_hash, organization_id, email, role_ids, invited_by, expires_at)
          VALUES (${Secrets.sha256(token)}, ${organizationId}, ${email}, ${roleIds}::uuid[], ${member.userId},
                  now() + interval '7 days')
          RETURNING id::text AS id, email, role_ids::text[] AS role_ids, expires_at, created_at`.pipe(
          decodeRows(InvitationRow)
        )
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

    list: Effect.fn("Invitations.list")(function* (member) {
      // Roles deleted since the invitation was sent are left out: accepting skips them too.
      const rows = yield* sql`
        SELECT i.id::text AS id, i.email, i.expires_at, i.created_at,
          ARRAY(SELECT r.id::text FROM unnest(i.role_ids) WITH ORDINALITY AS g(role_id, n)
                JOIN roles r ON r.organization_id = i.organization_id AND r.id = g.role_id ORDER BY g.n) AS role_ids
        FROM invitations i
        WHERE i.organization_id = ${member.organizationId}
          AND i.accepted_at IS NULL AND i.revoked_at IS NULL AND i.expires_at > now()
        ORDER BY i.created_at, i.id`.pipe(decodeRows(InvitationRow), Effect.orDie)
      return rows.map(toInvitation)
    }),

    revoke: Effect.fn("Invitations.revoke")(function* (member, invitationId, meta) {
      yield* Effect.gen(function* () {
        const [revoked] = yield* sql`
          UPDATE invitations SET revoked_at = now()
          WHERE organization_id = ${member.organizationId} AND id = ${invitationId}
            AND accepted_at IS NULL AND revoked_at IS NULL
          RETURNING email, role_ids::text[] AS role_ids`.pipe(decodeRows(Revoked))
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

    accept: Effect.fn("Invitations.accept")(function* (user, token, meta) {
      const tokenHash = Secrets.sha256(token)
      const outcome = yield* Effect.gen(function* () {
        const [found] = yield* sql`
          SELECT organization_id::text AS organization_id FROM invitations WHERE token_hash = ${tokenHash}`.pipe(
          decodeRows(Found)
        )
        if (found === undefined) return yield* noSuchInvitation
        const organizationId = found.organizationId
        yield* lockOrganization(sql, organizationId).pipe(Effect.catchTag("NotFound", () => noSuchInvitation))
        // One statement decides: of two parallel accepts, the second finds it used.
        const [invitation] = yield* sql`
          UPDATE invitations i SET accepted_at = now()
          FROM users u
          WHERE i.token_hash = ${tokenHash} AND i.accepted_at IS NULL AND i.revoked_at IS NULL
            AND i.expires_at > now() AND u.id = ${user.userId} AND lower(u.email) = lower(i.email)
          RETURNING i.id::text AS id, i.role_ids::text[] AS role_ids, i.invited_by::text AS invited_by`.pipe(
          decodeRows(Consumed)
        )
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
        // Roles deleted since the invitation was sent are skipped, and so are those the inviter can
        // no longer give (S46: the invitation gives no more than its sender's authority now).
        const org = yield* readAuthority(sql, organizationId)
        const { invitedBy } = invitation
        const roleIds = invitation.roleIds.filter(
          (roleId) => invitedBy !== null && refuseAssign(org, invitedBy, { userId: user.userId, roleId }) === undefined
        )
        const notGiven = invitation.roleIds.filter((roleId) => !roleIds.includes(roleId))
        const given = yield* sql`
          INSERT INTO assignments (organization_id, user_id, role_id, granted_by)
          SELECT r.organization_id, ${user.userId}, r.id, ${invitation.invitedBy}::uuid FROM roles r
          WHERE r.organization_id = ${organizationId} AND r.id = ANY(${roleIds}::uuid[])
          RETURNING id::text AS id, role_id::text AS role_id,
            (SELECT name FROM roles WHERE id = role_id) AS role_name`.pipe(decodeRows(Given))
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
          data: { after: { userId: user.userId, roles }, ...(notGiven.length > 0 ? { notGiven } : {}) },
          meta,
          revision
        })
        return new Joined({ organizationId, roles, revision })
      }).pipe(outbox.transaction)
      if (outcome === undefined) return yield* alreadyMember
      return outcome
    })
  })
})

/** Needs SQL, the outbox, the audit log, the mailer and PUBLIC_URL. */
export const InvitationsLive = Layer.effect(Invitations, make)
