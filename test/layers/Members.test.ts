import { randomUUID } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import { Clock, DateTime, Effect, TestClock } from "effect"
import { Invitations } from "../../src/services/Invitations.ts"
import { Members } from "../../src/services/Members.ts"
import { PermissionStore } from "../../src/services/PermissionStore.ts"
import { Roles } from "../../src/services/Roles.ts"
import {
  can,
  createOrganization,
  createUser,
  eventTypesSince,
  join,
  Mailbox,
  mailedToken,
  meta,
  RbacTest,
  revisionOf,
  roleId
} from "./RbacLayers.ts"

describe("Invitations and Members (layers on Postgres)", () => {
  it.layer(RbacTest, { timeout: "120 seconds" })((it) => {
    it.effect("an invitation is mailed, listed, refused to another address, and joins its addressee once", () =>
      Effect.gen(function* () {
        const invitations = yield* Invitations
        const owner = yield* createOrganization(yield* createUser("owner"))
        const org = owner.organizationId
        const invitee = yield* createUser("invitee")
        const stranger = yield* createUser("stranger")
        const memberRole = yield* roleId(owner, "member")

        // The address is compared without regard to case or surrounding spaces.
        const { invitation } = yield* invitations.create(
          owner,
          { email: ` ${invitee.email.toUpperCase()} `, roleIds: [memberRole] },
          meta
        )
        expect(invitation).toMatchObject({ email: invitee.email, roleIds: [memberRole] })
        const mail = (yield* Mailbox).findLast((message) => message.to === invitee.email)
        expect(mail?.subject).toBe("Invitation to join Test organization")
        const token = (yield* mailedToken(invitee.email))!
        expect((yield* invitations.list(owner)).map((pending) => pending.id)).toEqual([invitation.id])

        // Creating one changes nobody's permissions: no revision.
        const before = yield* revisionOf(org)
        expect(yield* Effect.flip(invitations.accept(stranger, token, meta))).toMatchObject({ _tag: "Forbidden" })
        expect(yield* invitations.list(owner)).toHaveLength(1)

        const joined = yield* invitations.accept(invitee, token, meta)
        expect(joined).toMatchObject({ organizationId: org, roles: ["member"], revision: String(BigInt(before) + 1n) })
        expect(yield* eventTypesSince(org, before)).toEqual(["member.added", "assignment.added"])
        expect(yield* can(org, invitee.userId, "members:read")).toBe(true)
        expect(yield* invitations.list(owner)).toEqual([])
        expect(yield* Effect.flip(invitations.accept(invitee, token, meta))).toMatchObject({ _tag: "NotFound" })
        expect(yield* Effect.flip(invitations.create(owner, { email: invitee.email }, meta))).toMatchObject({
          _tag: "Conflict",
          code: "already_member"
        })

        // A revoked invitation admits nobody, and is revoked once.
        const other = yield* createUser("other")
        const revoked = yield* invitations.create(owner, { email: other.email }, meta)
        yield* invitations.revoke(owner, revoked.invitation.id, meta)
        const otherToken = (yield* mailedToken(other.email))!
        expect(yield* Effect.flip(invitations.accept(other, otherToken, meta))).toMatchObject({ _tag: "NotFound" })
        expect(yield* Effect.flip(invitations.revoke(owner, revoked.invitation.id, meta))).toMatchObject({
          _tag: "NotFound"
        })
        expect(yield* revisionOf(org)).toBe(joined.revision)
      })
    )

    it.effect("nobody invites with a role that gives more than they hold", () =>
      Effect.gen(function* () {
        const invitations = yield* Invitations
        const owner = yield* createOrganization(yield* createUser("owner"))
        const admin = yield* join(owner, yield* createUser("admin"), ["admin"])
        const ownerRole = yield* roleId(owner, "owner")
        const sent = (yield* Mailbox).length
        const refused = yield* Effect.flip(
          invitations.create(admin, { email: "heir@example.com", roleIds: [ownerRole] }, meta)
        )
        expect(refused).toMatchObject({ _tag: "Forbidden", message: "You cannot give *: you do not hold it" })
        expect(
          yield* Effect.flip(invitations.create(admin, { email: "x@example.com", roleIds: [randomUUID()] }, meta))
        ).toMatchObject({
          _tag: "NotFound"
        })
        expect(yield* Mailbox).toHaveLength(sent)
        expect(yield* invitations.list(owner)).toEqual([])
      })
    )

    it.effect("an assignment given until T counts until T on the TestClock, and not from T on", () =>
      Effect.gen(function* () {
        const roles = yield* Roles
        const members = yield* Members
        const owner = yield* createOrganization(yield* createUser("owner"))
        const org = owner.organizationId
        const user = yield* join(owner, yield* createUser("temp"))
        yield* roles.createPermission(owner, { key: "reports:read" }, meta)
        const reporter = yield* roles.create(
          owner,
          { name: "reporter", grants: [{ permission: "reports:read", effect: "allow" }] },
          meta
        )
        const now = yield* Clock.currentTimeMillis
        const until = now + 60 * 60 * 1000

        expect(
          yield* Effect.flip(
            members.assign(
              owner,
              { userId: user.userId, roleId: reporter.role.id, expiresAt: DateTime.unsafeMake(now) },
              meta
            )
          )
        ).toMatchObject({ _tag: "BadRequest", message: "expiresAt must be in the future" })
        const given = yield* members.assign(
          owner,
          { userId: user.userId, roleId: reporter.role.id, expiresAt: DateTime.unsafeMake(until) },
          meta
        )
        expect(DateTime.toEpochMillis(given.assignment.expiresAt!)).toBe(until)
        expect(yield* can(org, user.userId, "reports:read")).toBe(true)

        yield* TestClock.adjust(until - 1 - now)
        expect(yield* can(org, user.userId, "reports:read")).toBe(true)
        yield* TestClock.adjust(1)
        expect(yield* can(org, user.userId, "reports:read")).toBe(false)
        const effective = yield* Effect.flatMap(PermissionStore, (store) => store.effective(org, user.userId))
        expect(effective.permissions).not.toContain("reports:read")
        // T has come: an expiry at T is no longer in the future.
        expect(
          yield* Effect.flip(
            members.assign(
              owner,
              { userId: user.userId, roleId: reporter.role.id, expiresAt: DateTime.unsafeMake(until) },
              meta
            )
          )
        ).toMatchObject({ _tag: "BadRequest" })
      })
    )

    it.effect(
      "the last owner stays; removing a member ends their roles and revokes invitations still pending for them",
      () =>
        Effect.gen(function* () {
          const invitations = yield* Invitations
          const members = yield* Members
          const owner = yield* createOrganization(yield* createUser("owner"))
          const org = owner.organizationId
          const ownerAssignment = (yield* members.assignments(owner, { userId: owner.userId }))[0]!
          expect(yield* Effect.flip(members.remove(owner, owner.userId, meta))).toMatchObject({ code: "last_owner" })
          expect(yield* Effect.flip(members.unassign(owner, ownerAssignment.id, meta))).toMatchObject({
            code: "last_owner"
          })

          // Invited twice; joins with the first invitation, the second stays pending.
          const user = yield* createUser("twice")
          yield* invitations.create(owner, { email: user.email, roleIds: [yield* roleId(owner, "viewer")] }, meta)
          const first = (yield* mailedToken(user.email))!
          yield* invitations.create(owner, { email: user.email }, meta)
          yield* invitations.accept(user, first, meta)
          const second = (yield* mailedToken(user.email))!
          expect(yield* invitations.list(owner)).toHaveLength(1)
          const listed = (yield* members.list(owner)).find((person) => person.userId === user.userId)
          expect(listed?.roles.map((role) => role.name)).toEqual(["viewer"])

          const before = yield* revisionOf(org)
          const removed = yield* members.remove(owner, user.userId, meta)
          expect(removed.revision).toBe(String(BigInt(before) + 1n))
          expect(yield* eventTypesSince(org, before)).toEqual(["member.removed", "assignment.removed"])
          expect(yield* invitations.list(owner)).toEqual([])
          expect(yield* Effect.flip(invitations.accept(user, second, meta))).toMatchObject({ _tag: "NotFound" })
          expect((yield* members.list(owner)).map((person) => person.userId)).toEqual([owner.userId])
          expect(yield* can(org, user.userId, "org:read")).toBe(false)
          expect(yield* Effect.flip(members.remove(owner, user.userId, meta))).toMatchObject({ _tag: "NotFound" })

          // With a second owner, the first may go.
          const heir = yield* join(owner, yield* createUser("heir"), ["owner"])
          yield* members.unassign(owner, ownerAssignment.id, meta)
          expect(yield* can(org, owner.userId, "org:delete")).toBe(false)
          expect(yield* can(org, heir.userId, "org:delete")).toBe(true)
        })
    )
  })
})
