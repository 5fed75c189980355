/**
 * A property of the RBAC services on Postgres (S45): whatever sequence of writes non-owners make
 * (an admin, a custom manager with roles:* and assignments:*, a member; called on the services
 * directly, so not even the guard helps), every owner keeps `org:read` and every `roles:*` key.
 */

import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { DateTime, Effect, Runtime } from "effect"
import fc from "fast-check"
import { Members } from "../../src/services/Members.ts"
import type { Organizations } from "../../src/services/Organizations.ts"
import type { PermissionStore } from "../../src/services/PermissionStore.ts"
import { Roles } from "../../src/services/Roles.ts"
import { asMember, can, createOrganization, createUser, meta, RbacTest } from "./RbacLayers.ts"

const PATTERNS = ["*", "org:*", "org:read", "roles:*", "roles:read", "roles:update", "assignments:*", "members:*"]
const OWNER_NEEDS = ["org:read", "roles:read", "roles:create", "roles:update", "roles:delete"]

interface Grant {
  readonly permission: string
  readonly effect: "allow" | "deny"
}

const grantArb: fc.Arbitrary<Grant> = fc.record({
  permission: fc.constantFrom(...PATTERNS),
  effect: fc.constantFrom<"allow" | "deny">("allow", "deny", "deny")
})
const grantsArb = fc.array(grantArb, { minLength: 1, maxLength: 3 })
const pick = fc.nat(50)

type Command =
  | {
      readonly kind: "createRole"
      readonly actor: number
      readonly grants: Array<Grant>
      readonly parents: Array<number>
    }
  | { readonly kind: "setGrants"; readonly actor: number; readonly role: number; readonly grants: Array<Grant> }
  | { readonly kind: "setParents"; readonly actor: number; readonly role: number; readonly parents: Array<number> }
  | { readonly kind: "deleteRole"; readonly actor: number; readonly role: number }
  | {
      readonly kind: "assign"
      readonly actor: number
      readonly user: number
      readonly role: number
      readonly scoped: boolean
      readonly expiring: boolean
    }
  | { readonly kind: "unassign"; readonly actor: number; readonly assignment: number }
  | { readonly kind: "removeMember"; readonly actor: number; readonly user: number }

const actor = fc.nat(2)
const commandArb: fc.Arbitrary<Command> = fc.oneof(
  fc.record({
    kind: fc.constant("createRole" as const),
    actor,
    grants: grantsArb,
    parents: fc.array(pick, { maxLength: 2 })
  }),
  fc.record({ kind: fc.constant("setGrants" as const), actor, role: pick, grants: grantsArb }),
  fc.record({ kind: fc.constant("setParents" as const), actor, role: pick, parents: fc.array(pick, { maxLength: 2 }) }),
  fc.record({ kind: fc.constant("deleteRole" as const), actor, role: pick }),
  fc.record({
    kind: fc.constant("assign" as const),
    actor,
    user: fc.nat(4),
    role: pick,
    scoped: fc.boolean(),
    expiring: fc.boolean()
  }),
  fc.record({ kind: fc.constant("unassign" as const), actor, assignment: pick }),
  fc.record({ kind: fc.constant("removeMember" as const), actor, user: fc.nat(4) })
)

describe("owners keep their access (layers on Postgres)", () => {
  it.layer(RbacTest, { timeout: "600 seconds" })((it) => {
    it.effect("no sequence of writes by non-owners leaves an owner without org:read and roles:* (S44, S45)", () =>
      Effect.gen(function* () {
        const runtime = yield* Effect.runtime<Roles | Members | SqlClient.SqlClient | PermissionStore | Organizations>()
        const users = {
          owner: yield* createUser("owner"),
          owner2: yield* createUser("owner2"),
          admin: yield* createUser("admin"),
          manager: yield* createUser("manager"),
          member: yield* createUser("member")
        }

        const run = (commands: ReadonlyArray<Command>) =>
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            const roles = yield* Roles
            const members = yield* Members
            const owner = yield* createOrganization(users.owner)
            const org = owner.organizationId
            const roleId = (name: string) =>
              Effect.map(roles.list(owner), (list) => list.find((role) => role.name === name)!.id)
            const join = (userId: string, role: string) =>
              Effect.gen(function* () {
                yield* sql`INSERT INTO memberships (organization_id, user_id) VALUES (${org}, ${userId})`
                yield* sql`
                    INSERT INTO assignments (organization_id, user_id, role_id)
                    VALUES (${org}, ${userId}, ${yield* roleId(role)})`
              }).pipe(Effect.orDie)
            yield* join(users.owner2.userId, "owner")
            yield* join(users.admin.userId, "admin")
            yield* join(users.manager.userId, "viewer")
            yield* join(users.member.userId, "member")
            const managers = yield* roles.create(
              owner,
              {
                name: "Managers",
                grants: ["roles:*", "assignments:*", "org:read", "members:*"].map((permission) => ({
                  permission,
                  effect: "allow" as const
                }))
              },
              meta
            )
            yield* members.assign(owner, { userId: users.manager.userId, roleId: managers.role.id }, meta)

            const actors = [users.admin, users.manager, users.member].map((user) => asMember(user, org))
            const everyone = Object.values(users)
            const of = <A>(list: ReadonlyArray<A>, i: number) => list[i % list.length]!
            let created = 0
            for (const command of commands) {
              const by = of(actors, command.actor)
              const roleIds = (yield* roles.list(owner)).map((role) => role.id)
              const attempt = Effect.gen(function* () {
                switch (command.kind) {
                  case "createRole":
                    return yield* roles.create(
                      by,
                      {
                        name: `made-${created++}`,
                        grants: command.grants,
                        parentIds: command.parents.map((i) => of(roleIds, i))
                      },
                      meta
                    )
                  case "setGrants":
                    return yield* roles.setGrants(by, of(roleIds, command.role), command.grants, meta)
                  case "setParents":
                    return yield* roles.setParents(
                      by,
                      of(roleIds, command.role),
                      command.parents.map((i) => of(roleIds, i)),
                      meta
                    )
                  case "deleteRole":
                    return yield* roles.remove(by, of(roleIds, command.role), meta)
                  case "assign":
                    return yield* members.assign(
                      by,
                      {
                        userId: of(everyone, command.user).userId,
                        roleId: of(roleIds, command.role),
                        ...(command.scoped ? { scope: { type: "project", id: "p1" } } : {}),
                        ...(command.expiring ? { expiresAt: DateTime.add(yield* DateTime.now, { hours: 1 }) } : {})
                      },
                      meta
                    )
                  case "unassign": {
                    const held = yield* members.assignments(owner, {})
                    if (held.length === 0) return undefined
                    return yield* members.unassign(by, of(held, command.assignment).id, meta)
                  }
                  case "removeMember":
                    return yield* members.remove(by, of(everyone, command.user).userId, meta)
                }
              })
              yield* Effect.either(attempt)
            }
            const lacking: Array<string> = []
            for (const who of [users.owner, users.owner2]) {
              for (const permission of OWNER_NEEDS) {
                if (!(yield* can(org, who.userId, permission))) lacking.push(`${who.email} ${permission}`)
              }
            }
            return lacking
          })

        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(fc.array(commandArb, { minLength: 1, maxLength: 12 }), async (commands) => {
              const lacking = await Runtime.runPromise(runtime)(run(commands))
              expect(lacking).toEqual([])
            }),
            { numRuns: 40, seed: 12 }
          )
        )
      })
    )
  })
})
