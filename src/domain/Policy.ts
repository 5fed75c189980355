/**
 * An organization's policy at one revision, and what follows from it without I/O: the answer to a
 * check for a user in their standing (member, enabled, frozen organization), the permissions a
 * user holds organization-wide and per resource, the roles a live session follows, and the
 * privilege-escalation rule (nobody gives what they do not hold).
 */
import { type Assignment, type CheckInput, closure, covers, type Decision, decide, type Role } from "./Decision.ts"

export interface Policy {
  readonly roles: ReadonlyArray<Role>
  readonly byId: ReadonlyMap<string, Role>
  /** Each role with all its ancestors, itself first. */
  readonly ancestors: ReadonlyMap<string, ReadonlyArray<string>>
  /** Every catalog key the organization knows (built-in and its own), sorted. */
  readonly catalog: ReadonlyArray<string>
}

export const makePolicy = (roles: ReadonlyArray<Role>, catalog: ReadonlyArray<string>): Policy => ({
  roles,
  byId: new Map(roles.map((role) => [role.id, role])),
  ancestors: closure(roles),
  catalog
})

/** A user as a decision sees them in one organization at one revision. */
export interface Standing {
  readonly member: boolean
  /** False when the account is disabled. */
  readonly enabled: boolean
  readonly assignments: ReadonlyArray<Assignment>
}

export type Access = "ok" | "not_member" | "frozen" | "disabled"

export const accessOf = (frozen: boolean, standing: Standing): Access =>
  frozen ? "frozen" : !standing.enabled ? "disabled" : !standing.member ? "not_member" : "ok"

export interface Judgement {
  readonly allowed: boolean
  readonly reason: string
  /** The organization is frozen or the user disabled: nothing at all is allowed. */
  readonly blocked: boolean
  /** The decision on the user's roles; absent when their standing decided. */
  readonly decision: Decision | undefined
}

/** A check as the permission store answers it: the standing first, then the roles. */
export const judge = (policy: Policy, frozen: boolean, standing: Standing, input: CheckInput): Judgement => {
  const refused = (reason: string, blocked: boolean): Judgement => ({
    allowed: false,
    reason,
    blocked,
    decision: undefined
  })
  switch (accessOf(frozen, standing)) {
    case "frozen":
      return refused("the organization is frozen", true)
    case "disabled":
      return refused("the user is disabled", true)
    case "not_member":
      return refused("not a member of the organization", false)
    case "ok": {
      const decision = decide(input, policy.roles, standing.assignments, policy.ancestors, policy.byId)
      return { allowed: decision.allowed, reason: decision.reason, blocked: false, decision }
    }
  }
}

/** The catalog keys a user holds, organization-wide and on the resources of their scoped assignments. */
export interface Effective {
  /** Allowed organization-wide (conditional grants excluded: they depend on the resource). */
  readonly permissions: ReadonlyArray<string>
  /** Allowed on one resource beyond the organization-wide ones, by `type/id`. */
  readonly scoped: Readonly<Record<string, ReadonlyArray<string>>>
  /** Allowed organization-wide but denied on one resource, by `type/id`. */
  readonly scopedDenied: Readonly<Record<string, ReadonlyArray<string>>>
}

export const nothingHeld: Effective = { permissions: [], scoped: {}, scopedDenied: {} }

/** What a member in good standing holds at `now`: every catalog key decided everywhere it can differ. */
export const effectiveOf = (
  policy: Policy,
  userId: string,
  assignments: ReadonlyArray<Assignment>,
  now: number
): Effective => {
  const allowedOn = (resource?: { type: string; id: string }) =>
    policy.catalog.filter(
      (permission) =>
        decide(
          { subject: { id: userId }, permission, resource, now },
          policy.roles,
          assignments,
          policy.ancestors,
          policy.byId
        ).allowed
    )
  const everywhere = allowedOn()
  const everywhereSet = new Set(everywhere)
  const scoped: Record<string, ReadonlyArray<string>> = {}
  const scopedDenied: Record<string, ReadonlyArray<string>> = {}
  const seen = new Set<string>()
  for (const assignment of assignments) {
    if (assignment.scope === undefined) continue
    const key = `${assignment.scope.type}/${assignment.scope.id}`
    if (seen.has(key)) continue
    seen.add(key)
    const on = new Set(allowedOn(assignment.scope))
    const extra = [...on].filter((permission) => !everywhereSet.has(permission))
    const denied = everywhere.filter((permission) => !on.has(permission))
    if (extra.length > 0) scoped[key] = extra
    if (denied.length > 0) scopedDenied[key] = denied
  }
  return { permissions: everywhere, scoped, scopedDenied }
}

/** Whether the set depends on the time (an assignment that will expire): such sets are never shared. */
export const dependsOnTime = (assignments: ReadonlyArray<Assignment>) =>
  assignments.some((assignment) => assignment.expiresAt !== undefined)

/**
 * The roles a live session shows and follows: names of the unexpired organization-wide ones,
 * sorted, and every assigned role (any scope, expired or not) with its ancestors, whose changes
 * can change the session.
 */
export const rolesHeld = (policy: Policy, assignments: ReadonlyArray<Assignment>, now: number) => {
  const live = assignments.filter((a) => a.expiresAt === undefined || a.expiresAt > now)
  const roles = [
    ...new Set(live.filter((a) => a.scope === undefined).map((a) => policy.byId.get(a.roleId)?.name ?? a.roleId))
  ].sort()
  const roleIds = [...new Set(assignments.flatMap((a) => policy.ancestors.get(a.roleId) ?? [a.roleId]))]
  return { roles, roleIds }
}

/** An action no catalog lists: only a wildcard grant allows it. */
const UNLISTED = "any.unlisted"
const wildcardOf = (key: string) => (key.startsWith(`${UNLISTED}:`) ? "*" : `${key.split(":")[0]}:*`)

/**
 * Privilege escalation: the first permission that these roles (with their ancestors' allows) or
 * allow patterns would give and `holds` says the actor lacks, or `undefined`. A wildcard needs
 * the wildcard itself (tested on a key no catalog lists) and every catalog key it covers.
 */
export const firstNotHeld = (
  policy: Policy,
  request: {
    readonly roleIds?: ReadonlyArray<string> | undefined
    readonly patterns?: ReadonlyArray<string> | undefined
  },
  holds: (permission: string) => boolean
): string | undefined => {
  const patterns = new Set(request.patterns ?? [])
  for (const roleId of request.roleIds ?? []) {
    for (const via of policy.ancestors.get(roleId) ?? []) {
      for (const grant of policy.byId.get(via)?.grants ?? []) {
        if (grant.effect === "allow") patterns.add(grant.permission)
      }
    }
  }
  const needed = new Set<string>()
  for (const pattern of patterns) {
    if (pattern === "*") needed.add(`${UNLISTED}:${UNLISTED}`)
    else if (pattern.endsWith(":*")) needed.add(`${pattern.slice(0, -1)}${UNLISTED}`)
    else needed.add(pattern)
    for (const key of policy.catalog) if (covers(pattern, key)) needed.add(key)
  }
  for (const permission of needed) {
    if (!holds(permission)) return permission.includes(UNLISTED) ? wildcardOf(permission) : permission
  }
  return undefined
}
