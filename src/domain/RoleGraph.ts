/**
 * Roles as stored, put together: the inheritance graph from its parent links, grants grouped by
 * role, a cycle named for people, and the grant-set rules of a role write (identical grants once,
 * the allows it would give). Closure and cycle detection themselves are in Decision.ts.
 */
import { findCycle, type Grant, type Role } from "./Decision.ts"

export interface ParentLink {
  readonly roleId: string
  readonly parentId: string
}

export interface RoleGrant extends Grant {
  readonly roleId: string
}

/**
 * The roles with their parents and grants, in the order given; each role's parents and grants
 * keep the order of the links and grants given.
 */
export const assembleRoles = (
  roles: ReadonlyArray<{ readonly id: string; readonly name: string }>,
  links: ReadonlyArray<ParentLink>,
  grants: ReadonlyArray<RoleGrant> = []
): ReadonlyArray<Role> => {
  const parents = new Map<string, Array<string>>()
  for (const link of links) parents.set(link.roleId, [...(parents.get(link.roleId) ?? []), link.parentId])
  const granted = new Map<string, Array<Grant>>()
  for (const { roleId, ...grant } of grants) granted.set(roleId, [...(granted.get(roleId) ?? []), grant])
  return roles.map((role) => ({
    id: role.id,
    name: role.name,
    parents: parents.get(role.id) ?? [],
    grants: granted.get(role.id) ?? []
  }))
}

/**
 * The cycle that giving `roleId` these parents would make, as role names (`a → b → a`), or
 * `undefined` when the graph stays acyclic.
 */
export const cycleIfParents = (
  roles: ReadonlyArray<Role>,
  roleId: string,
  parentIds: ReadonlyArray<string>
): ReadonlyArray<string> | undefined => {
  const cycle = findCycle(roles, roleId, parentIds)
  return cycle?.map((id) => roles.find((role) => role.id === id)?.name ?? id)
}

/** Identical grants (same permission, effect and condition) once, in the order first given. */
export const uniqueGrants = <G extends Grant>(grants: ReadonlyArray<G>): ReadonlyArray<G> => {
  const byKey = new Map<string, G>()
  for (const grant of grants) {
    byKey.set(JSON.stringify([grant.permission, grant.effect, grant.condition ?? null]), grant)
  }
  return [...byKey.values()]
}

/** The patterns a grant set allows, each once. */
export const allowPatterns = (grants: ReadonlyArray<Grant>): ReadonlyArray<string> => [
  ...new Set(grants.filter((grant) => grant.effect === "allow").map((grant) => grant.permission))
]
