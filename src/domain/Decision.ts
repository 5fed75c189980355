/**
 * The permission semantics as pure functions: what the permission store computes, what checks and
 * explain answer, and what the tests pin down. No I/O here.
 *
 * - A key is `resource:action`; grants may say `resource:*` or `*`; a check names a concrete key.
 * - A role's grants are its own plus those of every ancestor in the inheritance DAG.
 * - An assignment gives a role organization-wide or on one resource `{type, id}`; a scoped grant
 *   counts only for checks on that resource. Expired assignments count for nothing.
 * - Deny wins over allow. Conditions are data (see `evaluate`). Default deny.
 */

export const PERMISSION_KEY = /^[a-z][a-z0-9_.-]*:[a-z][a-z0-9_.-]*$/
export const GRANT_PATTERN = /^(\*|[a-z][a-z0-9_.-]*:(\*|[a-z][a-z0-9_.-]*))$/

export type GrantEffect = "allow" | "deny"

/** A condition: `{eq|ne: [a, b]}`, `{in: [a, list]}`, `{and|or: [...]}`, `{not: c}`, `{var: path}`, literals. */
export type Condition =
  | { readonly eq: readonly [Operand, Operand] }
  | { readonly ne: readonly [Operand, Operand] }
  | { readonly in: readonly [Operand, Operand] }
  | { readonly and: ReadonlyArray<Condition> }
  | { readonly or: ReadonlyArray<Condition> }
  | { readonly not: Condition }

export type Literal = string | number | boolean | null
export type Operand = Literal | ReadonlyArray<Literal> | { readonly var: string }

export interface Grant {
  readonly permission: string
  readonly effect: GrantEffect
  readonly condition?: Condition | undefined
}

export interface Role {
  readonly id: string
  readonly name: string
  readonly parents: ReadonlyArray<string>
  readonly grants: ReadonlyArray<Grant>
}

export interface Scope {
  readonly type: string
  readonly id: string
}

export interface Assignment {
  readonly id: string
  readonly roleId: string
  readonly scope?: Scope | undefined
  /** Milliseconds since the epoch; absent means it never expires. */
  readonly expiresAt?: number | undefined
}

export interface Resource {
  readonly type: string
  readonly id: string
  readonly attributes?: Readonly<Record<string, unknown>> | undefined
}

export interface Subject {
  readonly id: string
  readonly attributes?: Readonly<Record<string, unknown>> | undefined
}

export interface CheckInput {
  readonly subject: Subject
  readonly permission: string
  readonly resource?: Resource | undefined
  readonly now: number
}

export interface Path {
  readonly assignmentId: string
  readonly roleId: string
  /** The role that holds the grant: the assigned role or one of its ancestors. */
  readonly viaRoleId: string
  readonly grant: Grant
  readonly scope?: Scope | undefined
}

export interface Decision {
  readonly allowed: boolean
  readonly reason: string
  /** Every grant that applied to this check, allows and denies. */
  readonly paths: ReadonlyArray<Path>
}

/** Whether a grant's pattern covers a concrete permission key. */
export const covers = (pattern: string, permission: string): boolean => {
  if (pattern === "*") return true
  if (pattern === permission) return true
  if (pattern.endsWith(":*")) return permission.startsWith(pattern.slice(0, -1))
  return false
}

/**
 * Each role with all its ancestors (itself first), or the cycle that makes that impossible.
 * Unknown parent ids are ignored: a deleted role grants nothing.
 */
export const closure = (roles: ReadonlyArray<Role>): ReadonlyMap<string, ReadonlyArray<string>> => {
  const byId = new Map(roles.map((role) => [role.id, role]))
  const result = new Map<string, ReadonlyArray<string>>()
  for (const role of roles) {
    const seen = new Set<string>()
    const stack = [role.id]
    while (stack.length > 0) {
      const id = stack.pop()!
      if (seen.has(id) || !byId.has(id)) continue
      seen.add(id)
      for (const parent of byId.get(id)!.parents) stack.push(parent)
    }
    result.set(role.id, [...seen])
  }
  return result
}

/** The cycle `child → … → child` that giving `child` these parents would make, if any. */
export const findCycle = (
  roles: ReadonlyArray<Role>,
  child: string,
  parents: ReadonlyArray<string>
): ReadonlyArray<string> | undefined => {
  const byId = new Map(roles.map((role) => [role.id, role.id === child ? { ...role, parents } : role]))
  const walk = (id: string, trail: ReadonlyArray<string>): ReadonlyArray<string> | undefined => {
    const role = byId.get(id)
    if (role === undefined) return undefined
    for (const parent of role.parents) {
      if (parent === child) return [...trail, parent]
      if (trail.includes(parent)) continue
      const found = walk(parent, [...trail, parent])
      if (found !== undefined) return found
    }
    return undefined
  }
  return walk(child, [child])
}

type Value = { readonly known: true; readonly value: unknown } | { readonly known: false }
const unknown: Value = { known: false }
type Truth = boolean | undefined

const lookup = (path: string, input: CheckInput): Value => {
  const [root, ...rest] = path.split(".")
  let current: unknown
  if (root === "subject") {
    if (rest[0] === "id" && rest.length === 1) return { known: true, value: input.subject.id }
    if (rest[0] !== "attributes") return unknown
    current = input.subject.attributes
    rest.shift()
  } else if (root === "resource") {
    if (input.resource === undefined) return unknown
    if ((rest[0] === "id" || rest[0] === "type") && rest.length === 1) {
      return { known: true, value: input.resource[rest[0]] }
    }
    if (rest[0] !== "attributes") return unknown
    current = input.resource.attributes
    rest.shift()
  } else {
    return unknown
  }
  for (const key of rest) {
    if (typeof current !== "object" || current === null || !Object.hasOwn(current, key)) return unknown
    current = (current as Record<string, unknown>)[key]
  }
  return current === undefined ? unknown : { known: true, value: current }
}

const operand = (value: Operand, input: CheckInput): Value =>
  typeof value === "object" && value !== null && !Array.isArray(value)
    ? lookup((value as { var: string }).var, input)
    : { known: true, value }

const same = (a: unknown, b: unknown) =>
  (typeof a === "string" || typeof a === "number" || typeof a === "boolean" || a === null) && a === b

/**
 * Three-valued: a missing attribute makes a comparison unknown, `not` keeps it unknown, `and`/`or`
 * follow Kleene logic. An allow applies only when its condition is true; a deny applies unless its
 * condition is false (unknown is not enough to lift a deny).
 */
export const evaluate = (condition: Condition, input: CheckInput): Truth => {
  if ("eq" in condition || "ne" in condition) {
    const [a, b] = "eq" in condition ? condition.eq : condition.ne
    const left = operand(a, input)
    const right = operand(b, input)
    if (!left.known || !right.known) return undefined
    const equal = same(left.value, right.value)
    return "eq" in condition ? equal : !equal
  }
  if ("in" in condition) {
    const left = operand(condition.in[0], input)
    const right = operand(condition.in[1], input)
    if (!left.known || !right.known || !Array.isArray(right.value)) return undefined
    return right.value.some((item) => same(left.value, item))
  }
  if ("and" in condition) {
    const values = condition.and.map((c) => evaluate(c, input))
    if (values.some((v) => v === false)) return false
    return values.every((v) => v === true) ? true : undefined
  }
  if ("or" in condition) {
    const values = condition.or.map((c) => evaluate(c, input))
    if (values.some((v) => v === true)) return true
    return values.every((v) => v === false) ? false : undefined
  }
  if ("not" in condition) {
    const value = evaluate(condition.not, input)
    return value === undefined ? undefined : !value
  }
  return undefined
}

/** A role's grants by the key they name; those naming a pattern (`*`, `docs:*`) apart. Positions kept. */
interface GrantIndex {
  readonly exact: ReadonlyMap<string, ReadonlyArray<number>>
  readonly patterns: ReadonlyArray<number>
}

/** Roles are immutable values: each is indexed once, on its first decision. */
const indexes = new WeakMap<Role, GrantIndex>()

const indexOf = (role: Role): GrantIndex => {
  let index = indexes.get(role)
  if (index !== undefined) return index
  const exact = new Map<string, Array<number>>()
  const patterns: Array<number> = []
  role.grants.forEach((grant, position) => {
    if (grant.permission === "*" || grant.permission.endsWith(":*")) patterns.push(position)
    else {
      const same = exact.get(grant.permission)
      if (same === undefined) exact.set(grant.permission, [position])
      else same.push(position)
    }
  })
  index = { exact, patterns }
  indexes.set(role, index)
  return index
}

/** The role's grants that may cover `permission`, in the role's own order (which decides the reason given). */
const candidates = (role: Role, permission: string): ReadonlyArray<Grant> => {
  const { exact, patterns } = indexOf(role)
  const named = exact.get(permission) ?? []
  if (patterns.length === 0) return named.map((position) => role.grants[position]!)
  return [...named, ...patterns.filter((position) => covers(role.grants[position]!.permission, permission))]
    .sort((a, b) => a - b)
    .map((position) => role.grants[position]!)
}

const scopeMatches = (scope: Scope | undefined, resource: Resource | undefined) =>
  scope === undefined || (resource !== undefined && resource.type === scope.type && resource.id === scope.id)

const applies = (grant: Grant, input: CheckInput) => {
  if (!covers(grant.permission, input.permission)) return false
  if (grant.condition === undefined) return true
  const truth = evaluate(grant.condition, input)
  return grant.effect === "allow" ? truth === true : truth !== false
}

const explainPath = (path: Path, roles: ReadonlyMap<string, Role>) => {
  const via = roles.get(path.viaRoleId)?.name ?? path.viaRoleId
  const assigned = roles.get(path.roleId)?.name ?? path.roleId
  const inherited = path.viaRoleId === path.roleId ? "" : ` (inherited by ${assigned})`
  const scope = path.scope === undefined ? "" : ` on ${path.scope.type}/${path.scope.id}`
  return `${path.grant.effect} ${path.grant.permission} from role ${via}${inherited}${scope}`
}

/** The answer to one check, with every path that granted or denied it. */
export const decide = (
  input: CheckInput,
  roles: ReadonlyArray<Role>,
  assignments: ReadonlyArray<Assignment>,
  ancestors: ReadonlyMap<string, ReadonlyArray<string>> = closure(roles),
  /** The roles by id, when the caller keeps them (a policy does): built here otherwise. */
  byId: ReadonlyMap<string, Role> = new Map(roles.map((role) => [role.id, role]))
): Decision => {
  if (!PERMISSION_KEY.test(input.permission)) {
    return { allowed: false, reason: `"${input.permission}" is not a permission key`, paths: [] }
  }
  const paths: Array<Path> = []
  for (const assignment of assignments) {
    if (assignment.expiresAt !== undefined && assignment.expiresAt <= input.now) continue
    if (!scopeMatches(assignment.scope, input.resource)) continue
    for (const viaRoleId of ancestors.get(assignment.roleId) ?? []) {
      const role = byId.get(viaRoleId)
      for (const grant of role === undefined ? [] : candidates(role, input.permission)) {
        if (applies(grant, input)) {
          paths.push({
            assignmentId: assignment.id,
            roleId: assignment.roleId,
            viaRoleId,
            grant,
            scope: assignment.scope
          })
        }
      }
    }
  }
  const deny = paths.find((path) => path.grant.effect === "deny")
  if (deny !== undefined) return { allowed: false, reason: `denied: ${explainPath(deny, byId)}`, paths }
  const allow = paths.find((path) => path.grant.effect === "allow")
  if (allow !== undefined) return { allowed: true, reason: `allowed: ${explainPath(allow, byId)}`, paths }
  return { allowed: false, reason: "no grant allows it (default deny)", paths }
}
