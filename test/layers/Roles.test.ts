import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { Members } from "../../src/services/Members.ts"
import { Roles } from "../../src/services/Roles.ts"
import {
  can,
  createOrganization,
  createUser,
  eventTypesSince,
  join,
  meta,
  RbacTest,
  revisionOf,
  roleId
} from "./RbacLayers.ts"

describe("Roles (layers on Postgres)", () => {
  it.layer(RbacTest, { timeout: "120 seconds" })((it) => {
    it.effect(
      "each write bumps the revision with its event, and the very next check sees it (the TestClock stands still: no cache expiry helps)",
      () =>
        Effect.gen(function* () {
          const roles = yield* Roles
          const members = yield* Members
          const owner = yield* createOrganization(yield* createUser("owner"))
          const org = owner.organizationId
          const reader = yield* join(owner, yield* createUser("reader"))
          const start = yield* revisionOf(org)
          expect(yield* can(org, reader.userId, "docs:read")).toBe(false)

          const permission = yield* roles.createPermission(owner, { key: "docs:read", description: "Read docs" }, meta)
          const created = yield* roles.create(
            owner,
            { name: "docs-reader", grants: [{ permission: "docs:read", effect: "allow" }] },
            meta
          )
          expect(created.role).toMatchObject({
            name: "docs-reader",
            isSystem: false,
            parentIds: [],
            grants: [{ permission: "docs:read", effect: "allow" }]
          })
          const assigned = yield* members.assign(owner, { userId: reader.userId, roleId: created.role.id }, meta)
          expect(yield* can(org, reader.userId, "docs:read")).toBe(true)

          const emptied = yield* roles.setGrants(owner, created.role.id, [], meta)
          expect(yield* can(org, reader.userId, "docs:read")).toBe(false)

          const base = BigInt(start)
          expect([permission.revision, created.revision, assigned.revision, emptied.revision]).toEqual(
            [1n, 2n, 3n, 4n].map((step) => String(base + step))
          )
          expect(yield* eventTypesSince(org, start)).toEqual([
            "permission.created",
            "role.created",
            "assignment.added",
            "role.grants_changed"
          ])
          expect((yield* roles.permissions(owner)).find((p) => p.key === "docs:read")).toMatchObject({
            description: "Read docs",
            builtIn: false
          })
        })
    )

    it.effect(
      "a role inherits its parents' grants; a parent that would make a cycle is refused, named, and changes nothing",
      () =>
        Effect.gen(function* () {
          const roles = yield* Roles
          const members = yield* Members
          const owner = yield* createOrganization(yield* createUser("owner"))
          const org = owner.organizationId
          const user = yield* join(owner, yield* createUser("user"))
          yield* roles.createPermission(owner, { key: "docs:write" }, meta)
          const a = yield* roles.create(
            owner,
            { name: "a", grants: [{ permission: "docs:write", effect: "allow" }] },
            meta
          )
          const b = yield* roles.create(owner, { name: "b", parentIds: [a.role.id] }, meta)
          yield* members.assign(owner, { userId: user.userId, roleId: b.role.id }, meta)
          expect(yield* can(org, user.userId, "docs:write")).toBe(true)

          const before = yield* revisionOf(org)
          const cycle = yield* Effect.flip(roles.setParents(owner, a.role.id, [b.role.id], meta))
          expect(cycle).toMatchObject({
            _tag: "Conflict",
            code: "role_cycle",
            message: "These parents would make a cycle: a → b → a"
          })
          expect(yield* revisionOf(org)).toBe(before)
          expect((yield* roles.get(owner, a.role.id)).parentIds).toEqual([])

          // Cutting the link takes the inherited grant away at once.
          const cut = yield* roles.setParents(owner, b.role.id, [], meta)
          expect(cut.role.parentIds).toEqual([])
          expect(yield* can(org, user.userId, "docs:write")).toBe(false)
          expect(yield* eventTypesSince(org, before)).toEqual(["role.parents_changed"])
        })
    )

    it.effect("protects the system roles, refuses unknown keys, and nobody gives what they do not hold", () =>
      Effect.gen(function* () {
        const roles = yield* Roles
        const owner = yield* createOrganization(yield* createUser("owner"))
        const ownerRole = yield* roleId(owner, "owner")
        const adminRole = yield* roleId(owner, "admin")
        const before = yield* revisionOf(owner.organizationId)

        expect(yield* Effect.flip(roles.setGrants(owner, ownerRole, [], meta))).toMatchObject({
          _tag: "Conflict",
          code: "system_role"
        })
        expect(yield* Effect.flip(roles.remove(owner, adminRole, meta))).toMatchObject({ code: "system_role" })
        expect(yield* Effect.flip(roles.update(owner, adminRole, { name: "boss" }, meta))).toMatchObject({
          code: "system_role"
        })
        expect(
          yield* Effect.flip(
            roles.create(owner, { name: "typo", grants: [{ permission: "dcos:read", effect: "allow" }] }, meta)
          )
        ).toMatchObject({
          code: "unknown_permission",
          message: "Unknown permission dcos:read: add it to the catalog first"
        })
        expect(yield* revisionOf(owner.organizationId)).toBe(before)

        // An admin holds everything but org:delete: giving it, directly or through the owner role, is refused.
        const admin = yield* join(owner, yield* createUser("admin"), ["admin"])
        expect(
          yield* Effect.flip(
            roles.create(admin, { name: "deleter", grants: [{ permission: "org:delete", effect: "allow" }] }, meta)
          )
        ).toMatchObject({ _tag: "Forbidden", message: "You cannot give org:delete: you do not hold it" })
        expect(yield* Effect.flip(roles.create(admin, { name: "heir", parentIds: [ownerRole] }, meta))).toMatchObject({
          _tag: "Forbidden",
          message: "You cannot give *: you do not hold it"
        })
        // What the admin holds, they may give.
        const editor = yield* roles.create(
          admin,
          { name: "editor", grants: [{ permission: "roles:*", effect: "allow" }] },
          meta
        )
        expect(editor.role.grants).toEqual([{ permission: "roles:*", effect: "allow" }])
      })
    )

    it.effect("deleting a role takes it from everyone who held it, in the same revision", () =>
      Effect.gen(function* () {
        const roles = yield* Roles
        const members = yield* Members
        const owner = yield* createOrganization(yield* createUser("owner"))
        const org = owner.organizationId
        const user = yield* join(owner, yield* createUser("user"))
        const auditor = yield* roles.create(
          owner,
          { name: "auditor", grants: [{ permission: "audit:read", effect: "allow" }] },
          meta
        )
        yield* members.assign(owner, { userId: user.userId, roleId: auditor.role.id }, meta)
        expect(yield* can(org, user.userId, "audit:read")).toBe(true)

        const deleted = yield* roles.remove(owner, auditor.role.id, meta)
        expect(deleted.revision).toBe(yield* revisionOf(org))
        expect(yield* can(org, user.userId, "audit:read")).toBe(false)
        expect(yield* members.assignments(owner, { userId: user.userId })).toEqual([])
        expect(yield* Effect.flip(roles.get(owner, auditor.role.id))).toMatchObject({ _tag: "NotFound" })
      })
    )
  })
})
