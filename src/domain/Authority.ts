/**
 * Who may change whose access: the rules every RBAC write checks, as pure functions over one
 * organization's policy and its unexpired assignments at one instant (S44, S45, S46).
 *
 * - Giving: an allow is given (an assignment, or a role's grants or parents) only by someone who
 *   holds it: organization-wide, or on the scope the assignment is made on. What is given lasts
 *   no longer than the giver's hold on it: an assignment made through a privilege that ends at T
 *   must itself end at T or earlier (refused otherwise, naming T: never clamped silently), and
 *   allows added to a role are refused while any holder of that role keeps it beyond T.
 * - Denies: only an owner adds a deny (a deny grant, a parent carrying one, an assignment of a role
 *   carrying one), and never onto an owner (no deny reaches a role an owner holds; the owner role
 *   is not given to someone who carries a deny), so an owner never carries a deny. Nobody but an
 *   owner removes a deny that applies to them (their own assignment of a role carrying it, the
 *   deny or the parent carrying it from a role they hold, that role itself); removing a deny that
 *   applies to someone else needs the remover to hold what it denies.
 * - Taking away: removing an assignment, a member, a role or a role's allows needs the remover to
 *   hold what is removed (on the assignment's scope), as if giving it. Giving up one's own allows
 *   is always possible.
 * - Owners: an owner's assignments and membership are changed only by an owner, and only an owner
 *   gives the owner role.
 * - System roles' grants and parents are fixed.
 */
import { type Assignment, decide, type Grant, type Scope } from "./Decision.ts"
import { firstNotHeld, type Policy } from "./Policy.ts"

/** An unexpired assignment, with its holder. */
export interface Held extends Assignment {
  readonly userId: string
}

/** One organization as the rules see it, at `now`. */
export interface Organization {
  readonly policy: Policy
  readonly ownerRoleId: string
  readonly systemRoleIds: ReadonlySet<string>
  /** Every unexpired assignment of the organization. */
  readonly assignments: ReadonlyArray<Held>
  readonly now: number
}

export interface RoleRef {
  readonly id: string
  readonly name: string
}

export interface Refusal {
  /** `forbidden` answers 403; `system_role` a 409 with that code. */
  readonly kind: "forbidden" | "system_role"
  readonly message: string
}

const forbidden = (message: string): Refusal => ({ kind: "forbidden", message })

const ONLY_OWNER = "Only an owner can change an owner's access"
const DENY_BY_OWNER = "Only an owner can add a deny"
const NO_DENY_ON_OWNER = "A deny is never given to an owner"
const OWN_DENY = "You cannot remove a deny that applies to you"

const live = (org: Organization) => (a: Assignment) => a.expiresAt === undefined || a.expiresAt > org.now

export const assignmentsOf = (org: Organization, userId: string) =>
  org.assignments.filter((a) => a.userId === userId && live(org)(a))

/** An unexpired organization-wide assignment of the owner role. */
export const isOwner = (org: Organization, userId: string) =>
  assignmentsOf(org, userId).some((a) => a.roleId === org.ownerRoleId && a.scope === undefined)

/** Every grant these roles give, their ancestors' included. */
export const grantsOfRoles = (policy: Policy, roleIds: ReadonlyArray<string>): ReadonlyArray<Grant> =>
  roleIds.flatMap((id) => (policy.ancestors.get(id) ?? []).flatMap((via) => policy.byId.get(via)?.grants ?? []))

const patternsOf = (grants: ReadonlyArray<Grant>, effect: Grant["effect"]) => [
  ...new Set(grants.filter((grant) => grant.effect === effect).map((grant) => grant.permission))
]

const grantKey = (grant: Grant) => JSON.stringify([grant.permission, grant.effect, grant.condition ?? null])

/** The grants of `a` that `b` lacks. */
const minus = (a: ReadonlyArray<Grant>, b: ReadonlyArray<Grant>) => {
  const keys = new Set(b.map(grantKey))
  return a.filter((grant) => !keys.has(grantKey(grant)))
}

/** The role and every role that inherits from it. */
const inheritors = (policy: Policy, roleId: string) =>
  policy.roles.filter((role) => policy.ancestors.get(role.id)?.includes(roleId)).map((role) => role.id)

/** The unexpired assignments through which someone holds this role (directly or by inheritance). */
export const holdersOf = (org: Organization, roleId: string) => {
  const roles = new Set(inheritors(org.policy, roleId))
  return org.assignments.filter((a) => roles.has(a.roleId) && live(org)(a))
}

const carriesDeny = (org: Organization, roleId: string) =>
  grantsOfRoles(org.policy, [roleId]).some((grant) => grant.effect === "deny")

const iso = (millis: number) => new Date(millis).toISOString()
const where = (scope: Scope | undefined) => (scope === undefined ? "" : ` on ${scope.type}/${scope.id}`)

/** Whether `userId` holds `permission` (on `scope`, or organization-wide) now, and until when without a break. */
const holding = (org: Organization, userId: string, scope: Scope | undefined) => {
  const mine = assignmentsOf(org, userId)
  const ends = [...new Set(mine.flatMap((a) => (a.expiresAt === undefined ? [] : [a.expiresAt])))].sort((a, b) => a - b)
  const memo = new Map<string, { readonly held: boolean; readonly until: number | undefined }>()
  return (permission: string) => {
    const known = memo.get(permission)
    if (known !== undefined) return known
    const at = (now: number) =>
      decide(
        { subject: { id: userId }, permission, resource: scope, now },
        org.policy.roles,
        mine,
        org.policy.ancestors
      ).allowed
    const held = at(org.now)
    let until: number | undefined
    // Assignments only expire from here on: the hold breaks at the first end after which it is not allowed.
    if (held) {
      for (const end of ends) {
        if (!at(end)) {
          until = end
          break
        }
      }
    }
    const answer = { held, until }
    memo.set(permission, answer)
    return answer
  }
}

/**
 * Refuses unless `actorId` may give these allow patterns on `scope` (organization-wide when
 * absent) until `until` (absent: for ever). `verb` names the act in the message.
 */
export const cannotGive = (
  org: Organization,
  actorId: string,
  patterns: ReadonlyArray<string>,
  options: { readonly scope?: Scope | undefined; readonly until?: number | undefined; readonly verb?: string }
): Refusal | undefined => {
  if (patterns.length === 0) return undefined
  const { scope, until } = options
  const verb = options.verb ?? "give"
  const hold = holding(org, actorId, scope)
  const missing = firstNotHeld(org.policy, { patterns }, (permission) => hold(permission).held)
  if (missing !== undefined) {
    return forbidden(`You cannot ${verb} ${missing}${where(scope)}: you do not hold it${scope ? " there" : ""}`)
  }
  let endsAt: number | undefined
  const lasting = firstNotHeld(org.policy, { patterns }, (permission) => {
    const held = hold(permission).until
    const lasts = held === undefined || (until !== undefined && until <= held)
    if (!lasts) endsAt = held
    return lasts
  })
  if (lasting === undefined || endsAt === undefined) return undefined
  return forbidden(
    `You cannot ${verb} ${lasting}${where(scope)} ${until === undefined ? "for ever" : `until ${iso(until)}`}: ` +
      `you hold it only until ${iso(endsAt)}; set an expiry no later than that`
  )
}

/** Giving `roleId` to `userId` (on `scope`, until `expiresAt`) by `actorId`. */
export const refuseAssign = (
  org: Organization,
  actorId: string,
  request: {
    readonly userId: string
    readonly roleId: string
    readonly scope?: Scope | undefined
    readonly expiresAt?: number | undefined
  }
): Refusal | undefined => {
  const actorOwns = isOwner(org, actorId)
  if (!actorOwns && isOwner(org, request.userId)) return forbidden(ONLY_OWNER)
  const allows = patternsOf(grantsOfRoles(org.policy, [request.roleId]), "allow")
  const notHeld = cannotGive(org, actorId, allows, { scope: request.scope, until: request.expiresAt })
  if (notHeld !== undefined) return notHeld
  if (!actorOwns && request.roleId === org.ownerRoleId) return forbidden("Only an owner can make an owner")
  if (
    request.roleId === org.ownerRoleId &&
    assignmentsOf(org, request.userId).some((a) => carriesDeny(org, a.roleId))
  ) {
    return forbidden(`${NO_DENY_ON_OWNER}: take away this member's roles that carry a deny first`)
  }
  if (carriesDeny(org, request.roleId)) {
    if (!actorOwns) return forbidden(`${DENY_BY_OWNER}: this role carries a deny`)
    if (isOwner(org, request.userId)) return forbidden(NO_DENY_ON_OWNER)
  }
  return undefined
}

/** Removing a deny-carrying grant set from `userId` by `actorId`. */
const refuseDenyRemoval = (
  org: Organization,
  actorId: string,
  affected: ReadonlyArray<string>,
  denies: ReadonlyArray<string>,
  scope?: Scope | undefined
) => {
  if (denies.length === 0 || isOwner(org, actorId)) return undefined
  if (affected.includes(actorId)) return forbidden(OWN_DENY)
  return cannotGive(org, actorId, denies, { scope, until: org.now, verb: "lift a deny on" })
}

/** Taking away one assignment. */
export const refuseUnassign = (org: Organization, actorId: string, assignment: Held): Refusal | undefined => {
  const actorOwns = isOwner(org, actorId)
  if (!actorOwns && isOwner(org, assignment.userId)) return forbidden(ONLY_OWNER)
  const grants = grantsOfRoles(org.policy, [assignment.roleId])
  const denied = refuseDenyRemoval(org, actorId, [assignment.userId], patternsOf(grants, "deny"), assignment.scope)
  if (denied !== undefined || assignment.userId === actorId) return denied
  return cannotGive(org, actorId, patternsOf(grants, "allow"), {
    scope: assignment.scope,
    until: org.now,
    verb: "take away"
  })
}

/** Removing `userId` from the organization (with every assignment they hold). */
export const refuseRemoveMember = (org: Organization, actorId: string, userId: string): Refusal | undefined => {
  if (userId === actorId) return undefined
  if (!isOwner(org, actorId) && isOwner(org, userId)) return forbidden(ONLY_OWNER)
  for (const assignment of assignmentsOf(org, userId)) {
    const refused = refuseUnassign(org, actorId, assignment)
    if (refused !== undefined) return refused
  }
  return undefined
}

/**
 * Changing what a role gives, from `before` to `after` (each its grants with its ancestors'):
 * creating (`role` absent, nobody holds it yet), replacing its grants or parents, deleting it.
 */
export const refuseRoleChange = (
  org: Organization,
  actorId: string,
  role: RoleRef | undefined,
  before: ReadonlyArray<Grant>,
  after: ReadonlyArray<Grant>
): Refusal | undefined => {
  const holders = role === undefined ? [] : holdersOf(org, role.id)
  const holderIds = [...new Set(holders.map((a) => a.userId))]
  const actorOwns = isOwner(org, actorId)
  const addedDenies = patternsOf(minus(after, before), "deny")
  if (addedDenies.length > 0) {
    if (!actorOwns) return forbidden(`${DENY_BY_OWNER} (deny ${addedDenies[0]})`)
    if (holderIds.some((id) => isOwner(org, id))) return forbidden(`${NO_DENY_ON_OWNER}: an owner holds ${role?.name}`)
  }
  const removed = minus(before, after)
  const lifted = refuseDenyRemoval(org, actorId, holderIds, patternsOf(removed, "deny"))
  if (lifted !== undefined) return lifted
  const takenAway = cannotGive(org, actorId, patternsOf(removed, "allow"), { until: org.now, verb: "take away" })
  if (takenAway !== undefined) return takenAway
  // What is added reaches every holder for as long as their assignment lasts.
  const lastEnd =
    holders.length === 0
      ? org.now
      : holders.some((a) => a.expiresAt === undefined)
        ? undefined
        : Math.max(...holders.map((a) => a.expiresAt!))
  return cannotGive(org, actorId, patternsOf(minus(after, before), "allow"), { until: lastEnd })
}

/** A role's grants with its ancestors' if it had these own grants and parents. */
export const grantsWith = (
  policy: Policy,
  own: ReadonlyArray<Grant>,
  parentIds: ReadonlyArray<string>
): ReadonlyArray<Grant> => [...own, ...grantsOfRoles(policy, parentIds)]
