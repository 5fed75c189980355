/**
 * Roles and the catalog on Postgres. Every write runs in one transaction that first bumps the
 * organization's revision (`outbox.record`, which locks the organization row: writes to one
 * organization's roles run one at a time), then reads what it checks, changes the rows and records
 * the audit entry with the new revision. A refused write rolls the revision back with it.
 *
 * Rules worth knowing:
 * - System roles' grants and parents are fixed (409 `system_role`); no system role is renamed or
 *   deleted. `owner` always holds `*`.
 * - Who may change what a role gives is domain/Authority.ts, judged inside the transaction on what
 *   is committed once the organization is locked: allows added must be held organization-wide by
 *   the caller for as long as the role's holders keep it, only an owner adds a deny (never to a
 *   role an owner holds), nobody but an owner lifts a deny that applies to them, and what is taken
 *   away (grants, parents, the role itself) must be something the caller could give.
 * - Creating a role records only `role.created`: a new role is held by nobody and is nobody's
 *   parent, so its parents and grants change no one's permissions yet.
 */
import { randomUUID } from "node:crypto"
import { DateTime, Effect, Layer, Schema } from "effect"
import { grantsWith, type RoleRef } from "../../domain/Authority.ts"
import { type Grant as DomainGrant, PERMISSION_KEY } from "../../domain/Decision.ts"
import type { Policy } from "../../domain/Policy.ts"
import { assembleRoles, cycleIfParents, uniqueGrants } from "../../domain/RoleGraph.ts"
import { Conflict, NotFound } from "../../rpc/Errors.ts"
import { type Grant, Permission, PermissionCreated, Role, RoleChanged, RoleDeleted } from "../../rpc/Roles.ts"
import type { Member } from "../../rpc/Security.ts"
import type { RequestMeta } from "../../services/AuditLog.ts"
import { event } from "../../services/Events.ts"
import type { NewEvent } from "../../services/Outbox.ts"
import { Roles } from "../../services/Roles.ts"
import { decodeRows } from "../Sql.ts"
import { authoriseRoleChange, GrantRow, ParentRow, Writer } from "./RbacSql.ts"

const RoleRow = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  description: Schema.String,
  isSystem: Schema.Boolean,
  createdAt: Schema.DateFromSelf,
  updatedAt: Schema.DateFromSelf
})
const roleRows = decodeRows(RoleRow)

const parentRows = decodeRows(ParentRow)

const Key = Schema.Struct({ key: Schema.String })
const Id = Schema.Struct({ id: Schema.String })
const CatalogRow = Schema.Struct({ key: Schema.String, description: Schema.String, builtIn: Schema.Boolean })

const noSuchRole = (id: string) => new NotFound({ message: `No such role ${id}` })
const systemRole = (message: string) => new Conflict({ code: "system_role", message })

const unique = <A>(items: ReadonlyArray<A>) => [...new Set(items)]

/** What an audit entry says about a role: enough to see what changed, nothing secret. */
const summary = ({ name, description, parentIds, grants }: Role) => ({ name, description, parentIds, grants })

export const make = Effect.gen(function* () {
  const { sql, outbox, audit } = yield* Writer

  /** The organization's roles (or the one named), with parents and grants, by name. */
  const readRoles = (organizationId: string, roleId?: string) =>
    Effect.gen(function* () {
      const one = roleId === undefined ? [] : [sql`id = ${roleId}`]
      const roles = yield* sql`
        SELECT id, name, description, is_system, created_at, updated_at FROM roles
        WHERE ${sql.and([sql`organization_id = ${organizationId}`, ...one])} ORDER BY name`.pipe(roleRows)
      if (roles.length === 0) return []
      const ids = sql.in(roles.map((role) => role.id))
      const parents = yield* sql`
        SELECT role_id, parent_id FROM role_parents
        WHERE organization_id = ${organizationId} AND role_id IN ${ids} ORDER BY parent_id`.pipe(parentRows)
      const grants = yield* sql`
        SELECT role_id, permission, effect, condition::text AS condition FROM role_grants
        WHERE organization_id = ${organizationId} AND role_id IN ${ids}
        ORDER BY permission, effect, condition::text NULLS FIRST`.pipe(decodeRows(GrantRow))
      return roles.map(
        (role) =>
          new Role({
            id: role.id,
            name: role.name,
            description: role.description,
            isSystem: role.isSystem,
            parentIds: parents.filter((p) => p.roleId === role.id).map((p) => p.parentId),
            grants: grants
              .filter((g) => g.roleId === role.id)
              .map((g) => ({
                permission: g.permission,
                effect: g.effect,
                ...(g.condition === null ? {} : { condition: g.condition })
              })),
            createdAt: DateTime.unsafeFromDate(role.createdAt),
            updatedAt: DateTime.unsafeFromDate(role.updatedAt)
          })
      )
    }).pipe(Effect.orDie)

  const readRole = (organizationId: string, roleId: string) =>
    Effect.flatMap(readRoles(organizationId, roleId), (roles) =>
      roles[0] === undefined ? Effect.fail(noSuchRole(roleId)) : Effect.succeed(roles[0])
    )

  /** The role, locked until commit; 404 when it is not this organization's. */
  const lockRole = (organizationId: string, roleId: string) =>
    Effect.gen(function* () {
      const [row] = yield* sql`
        SELECT 1 AS one FROM roles WHERE organization_id = ${organizationId} AND id = ${roleId} FOR UPDATE`.pipe(
        Effect.orDie
      )
      if (row === undefined) return yield* noSuchRole(roleId)
      return yield* readRole(organizationId, roleId)
    })

  /** Concrete keys must be in the catalog; `*` and `resource:*` need not. */
  const requireCatalog = (organizationId: string, grants: ReadonlyArray<Grant>) =>
    Effect.gen(function* () {
      const keys = unique(grants.map((grant) => grant.permission).filter((p) => PERMISSION_KEY.test(p)))
      if (keys.length === 0) return
      const known = yield* sql`
        SELECT key FROM permissions
        WHERE key IN ${sql.in(keys)} AND (organization_id IS NULL OR organization_id = ${organizationId})`.pipe(
        decodeRows(Key),
        Effect.orDie
      )
      const missing = keys.find((key) => !known.some((row) => row.key === key))
      if (missing !== undefined) {
        return yield* new Conflict({
          code: "unknown_permission",
          message: `Unknown permission ${missing}: add it to the catalog first`
        })
      }
    })

  const authorise = (
    member: Member,
    role: RoleRef | undefined,
    after: (policy: Policy) => ReadonlyArray<DomainGrant>
  ) => authoriseRoleChange(sql, member, role, after)

  /** 404 unless every id is a role of this organization. */
  const requireRoles = (organizationId: string, roleIds: ReadonlyArray<string>) =>
    Effect.gen(function* () {
      if (roleIds.length === 0) return
      const found = yield* sql`
        SELECT id FROM roles WHERE organization_id = ${organizationId} AND id IN ${sql.in(roleIds)}`.pipe(
        decodeRows(Id),
        Effect.orDie
      )
      const missing = roleIds.find((id) => !found.some((row) => row.id === id))
      if (missing !== undefined) return yield* noSuchRole(missing)
    })

  const insertParents = (organizationId: string, roleId: string, parentIds: ReadonlyArray<string>) =>
    parentIds.length === 0
      ? Effect.void
      : sql`
          INSERT INTO role_parents (organization_id, role_id, parent_id)
          SELECT ${organizationId}::uuid, ${roleId}::uuid, unnest(${parentIds}::uuid[])`.pipe(Effect.orDie)

  // One statement for the set; the condition travels as JSON text and is stored as jsonb data.
  const insertGrants = (organizationId: string, roleId: string, grants: ReadonlyArray<Grant>) =>
    grants.length === 0
      ? Effect.void
      : sql`
          INSERT INTO role_grants (organization_id, role_id, permission, effect, condition)
          SELECT ${organizationId}::uuid, ${roleId}::uuid, g->>'permission', g->>'effect', g->'condition'
          FROM jsonb_array_elements(${JSON.stringify(grants)}::jsonb) AS g`.pipe(Effect.orDie)

  const touch = (organizationId: string, roleId: string) =>
    sql`UPDATE roles SET updated_at = now() WHERE organization_id = ${organizationId} AND id = ${roleId}`.pipe(
      Effect.orDie
    )

  /** The role as it is now, audited as the outcome of `action` at `revision`. */
  const changed = (
    member: Member,
    action: string,
    roleId: string,
    meta: RequestMeta,
    revision: string,
    data: (after: Role) => Record<string, unknown>
  ) =>
    Effect.gen(function* () {
      const role = yield* readRole(member.organizationId, roleId)
      yield* audit.record({
        action,
        actorId: member.userId,
        organizationId: member.organizationId,
        target: roleId,
        data: data(role),
        meta,
        revision
      })
      return new RoleChanged({ role, revision })
    })

  /**
   * Replaces the parents or the grants of a role that is not a system role: `check` runs before
   * the transaction; in it the revision is bumped, the role locked, `after` (what the role would
   * give) authorised, `write` replaces the rows, and the outcome is audited with that facet before
   * and after.
   */
  const replaceFacet = <E1, E2>(
    member: Member,
    roleId: string,
    meta: RequestMeta,
    change: {
      readonly facet: "parentIds" | "grants"
      readonly event: NewEvent
      readonly check: Effect.Effect<void, E1>
      readonly after: (policy: Policy) => ReadonlyArray<DomainGrant>
      readonly write: Effect.Effect<void, E2>
    }
  ) =>
    Effect.gen(function* () {
      const organizationId = member.organizationId
      const { facet } = change
      const current = yield* readRole(organizationId, roleId)
      if (current.isSystem) {
        return yield* systemRole(`The system role ${current.name} has fixed grants and parents: make a custom role`)
      }
      yield* change.check
      return yield* Effect.gen(function* () {
        const revision = yield* outbox.record(organizationId, [change.event])
        const before = yield* lockRole(organizationId, roleId)
        yield* authorise(member, before, change.after)
        yield* change.write
        yield* touch(organizationId, roleId)
        return yield* changed(member, change.event.type, roleId, meta, revision, (role) => ({
          before: { [facet]: before[facet] },
          after: { [facet]: role[facet] }
        }))
      }).pipe(outbox.transaction)
    })

  return Roles.of({
    permissions: Effect.fn("Roles.permissions")(function* (member) {
      const rows = yield* sql`
        SELECT key, description, organization_id IS NULL AS built_in FROM permissions
        WHERE organization_id IS NULL OR organization_id = ${member.organizationId}
        ORDER BY key, organization_id NULLS FIRST`.pipe(decodeRows(CatalogRow), Effect.orDie)
      return rows.map((row) => new Permission(row))
    }),

    createPermission: Effect.fn("Roles.createPermission")(function* (member, { key, description = "" }, meta) {
      const organizationId = member.organizationId
      return yield* Effect.gen(function* () {
        const revision = yield* outbox.record(organizationId, [event("permission.created", { key })])
        const [taken] = yield* sql`
          SELECT 1 AS one FROM permissions
          WHERE key = ${key} AND (organization_id IS NULL OR organization_id = ${organizationId})`
        if (taken !== undefined) {
          return yield* new Conflict({ code: "permission_exists", message: `The permission ${key} already exists` })
        }
        yield* sql`INSERT INTO permissions (organization_id, key, description) VALUES (${organizationId}, ${key}, ${description})`
        yield* audit.record({
          action: "permission.created",
          actorId: member.userId,
          organizationId,
          target: key,
          data: { before: null, after: { key, description } },
          meta,
          revision
        })
        return new PermissionCreated({ permission: new Permission({ key, description, builtIn: false }), revision })
      }).pipe(outbox.transaction)
    }),

    list: Effect.fn("Roles.list")((member) => readRoles(member.organizationId)),

    get: Effect.fn("Roles.get")((member, roleId) => readRole(member.organizationId, roleId)),

    create: Effect.fn("Roles.create")(function* (member, input, meta) {
      const organizationId = member.organizationId
      const grants = uniqueGrants(input.grants ?? [])
      const parentIds = unique(input.parentIds ?? [])
      yield* requireCatalog(organizationId, grants)
      const roleId = randomUUID()
      return yield* Effect.gen(function* () {
        const revision = yield* outbox.record(organizationId, [event("role.created", { roleId })])
        const [taken] = yield* sql`
          SELECT 1 AS one FROM roles WHERE organization_id = ${organizationId} AND name = ${input.name}`
        if (taken !== undefined) {
          return yield* new Conflict({ code: "role_name_taken", message: `A role named "${input.name}" exists` })
        }
        yield* requireRoles(organizationId, parentIds)
        yield* authorise(member, undefined, (policy) => grantsWith(policy, grants, parentIds))
        yield* sql`
          INSERT INTO roles (id, organization_id, name, description)
          VALUES (${roleId}, ${organizationId}, ${input.name}, ${input.description ?? ""})`
        yield* insertParents(organizationId, roleId, parentIds)
        yield* insertGrants(organizationId, roleId, grants)
        return yield* changed(member, "role.created", roleId, meta, revision, (role) => ({
          before: null,
          after: summary(role)
        }))
      }).pipe(outbox.transaction)
    }),

    update: Effect.fn("Roles.update")(function* (member, roleId, { name, description }, meta) {
      const organizationId = member.organizationId
      return yield* Effect.gen(function* () {
        const revision = yield* outbox.record(organizationId, [event("role.updated", { roleId })])
        const before = yield* lockRole(organizationId, roleId)
        if (name !== undefined && name !== before.name) {
          if (before.isSystem) return yield* systemRole(`The system role ${before.name} cannot be renamed`)
          const [taken] = yield* sql`
            SELECT 1 AS one FROM roles WHERE organization_id = ${organizationId} AND name = ${name}`
          if (taken !== undefined) {
            return yield* new Conflict({ code: "role_name_taken", message: `A role named "${name}" exists` })
          }
        }
        yield* sql`
          UPDATE roles SET name = ${name ?? before.name}, description = ${description ?? before.description},
                 updated_at = now()
          WHERE organization_id = ${organizationId} AND id = ${roleId}`
        return yield* changed(member, "role.updated", roleId, meta, revision, (role) => ({
          before: { name: before.name, description: before.description },
          after: { name: role.name, description: role.description }
        }))
      }).pipe(outbox.transaction)
    }),

    remove: Effect.fn("Roles.remove")(function* (member, roleId, meta) {
      const organizationId = member.organizationId
      return yield* Effect.gen(function* () {
        const revision = yield* outbox.record(organizationId, [event("role.deleted", { roleId })])
        const before = yield* lockRole(organizationId, roleId)
        if (before.isSystem) return yield* systemRole(`The system role ${before.name} cannot be deleted`)
        yield* authorise(member, before, () => [])
        // Grants, parent links, child links and assignments go with it (foreign keys cascade).
        yield* sql`DELETE FROM roles WHERE organization_id = ${organizationId} AND id = ${roleId}`
        yield* audit.record({
          action: "role.deleted",
          actorId: member.userId,
          organizationId,
          target: roleId,
          data: { before: summary(before), after: null },
          meta,
          revision
        })
        return new RoleDeleted({ deleted: true, revision })
      }).pipe(outbox.transaction)
    }),

    setParents: Effect.fn("Roles.setParents")(function* (member, roleId, parentIdsGiven, meta) {
      const organizationId = member.organizationId
      const parentIds = unique(parentIdsGiven)
      return yield* replaceFacet(member, roleId, meta, {
        facet: "parentIds",
        event: event("role.parents_changed", { roleId, parentIds }),
        check: Effect.void,
        after: (policy) => grantsWith(policy, policy.byId.get(roleId)?.grants ?? [], parentIds),
        write: Effect.gen(function* () {
          yield* requireRoles(organizationId, parentIds)
          // The organization row is locked: no other parent change can interleave with this read.
          const roles = yield* sql`SELECT id, name FROM roles WHERE organization_id = ${organizationId}`.pipe(
            decodeRows(Schema.Struct({ id: Schema.String, name: Schema.String }))
          )
          const links = yield* sql`
            SELECT role_id, parent_id FROM role_parents WHERE organization_id = ${organizationId}`.pipe(parentRows)
          const cycle = cycleIfParents(assembleRoles(roles, links), roleId, parentIds)
          if (cycle !== undefined) {
            return yield* new Conflict({
              code: "role_cycle",
              message: `These parents would make a cycle: ${cycle.join(" → ")}`
            })
          }
          yield* sql`DELETE FROM role_parents WHERE organization_id = ${organizationId} AND role_id = ${roleId}`
          yield* insertParents(organizationId, roleId, parentIds)
        })
      })
    }),

    setGrants: Effect.fn("Roles.setGrants")(function* (member, roleId, grantsGiven, meta) {
      const organizationId = member.organizationId
      const grants = uniqueGrants(grantsGiven)
      return yield* replaceFacet(member, roleId, meta, {
        facet: "grants",
        event: event("role.grants_changed", { roleId }),
        check: requireCatalog(organizationId, grants),
        after: (policy) => grantsWith(policy, grants, policy.byId.get(roleId)?.parents ?? []),
        write: Effect.zipRight(
          sql`DELETE FROM role_grants WHERE organization_id = ${organizationId} AND role_id = ${roleId}`,
          insertGrants(organizationId, roleId, grants)
        )
      })
    })
  })
})

export const RolesLive = Layer.effect(Roles, make)
