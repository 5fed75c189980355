/**
 * The effective set a live session holds: the keys allowed organization-wide, the keys allowed on
 * one resource beyond them (`scoped`), the organization-wide keys denied on one resource
 * (`scopedDenied`), the role names and the revision they are at. The server (SessionActor) builds
 * one from each snapshot and sends the difference; the client (LiveClient) applies snapshots and
 * differences to its copy. Both use these functions, so the two ends cannot disagree.
 *
 * Values are immutable; resources are keyed `type/id`; revisions are integers (`bigint`) here and
 * strings of digits on the wire. A set never holds an empty resource entry.
 */

export type ScopedKeys = Readonly<Record<string, ReadonlyArray<string>>>
type ScopedSets = ReadonlyMap<string, ReadonlySet<string>>

export interface EffectiveSet {
  readonly revision: bigint
  readonly permissions: ReadonlySet<string>
  readonly scoped: ScopedSets
  readonly scopedDenied: ScopedSets
  readonly roles: ReadonlyArray<string>
}

/** The whole state as the wire carries it (a `hello`, or a snapshot from the permission store). */
export interface Snapshot {
  readonly revision: string
  readonly permissions: ReadonlyArray<string>
  readonly scoped: ScopedKeys
  readonly scopedDenied?: ScopedKeys | undefined
  readonly roles: ReadonlyArray<string>
}

/** What changed between two sets, as the `permissions` frame carries it: empty resource parts left out. */
export interface Diff {
  readonly revision: string
  readonly added: ReadonlyArray<string>
  readonly removed: ReadonlyArray<string>
  readonly scopedAdded?: ScopedKeys | undefined
  readonly scopedRemoved?: ScopedKeys | undefined
  readonly scopedDeniedAdded?: ScopedKeys | undefined
  readonly scopedDeniedRemoved?: ScopedKeys | undefined
  /** The role names, sorted, when they changed (an assignment, an expiry, a rename); absent otherwise. */
  readonly roles?: ReadonlyArray<string> | undefined
}

/** What actually changed, every part present (`{}`/`[]` when nothing), keys sorted. */
export interface Change {
  readonly added: ReadonlyArray<string>
  readonly removed: ReadonlyArray<string>
  readonly scopedAdded: ScopedKeys
  readonly scopedRemoved: ScopedKeys
  readonly scopedDeniedAdded: ScopedKeys
  readonly scopedDeniedRemoved: ScopedKeys
}

const noKeys: ReadonlySet<string> = new Set()

export const empty: EffectiveSet = {
  revision: 0n,
  permissions: noKeys,
  scoped: new Map(),
  scopedDenied: new Map(),
  roles: []
}

/** `type/id`, the key of a resource in `scoped` and `scopedDenied`. */
export const resourceKey = (resource: { readonly type: string; readonly id: string }) =>
  `${resource.type}/${resource.id}`

const toSets = (scoped: ScopedKeys): ScopedSets => {
  const out = new Map<string, ReadonlySet<string>>()
  for (const key in scoped) {
    const keys = scoped[key]!
    if (keys.length > 0) out.set(key, new Set(keys))
  }
  return out
}

/** Resource-scoped keys as the wire carries them, `type/id` → keys sorted. */
export const toRecord = (scoped: ScopedSets): ScopedKeys => {
  const out: Record<string, ReadonlyArray<string>> = {}
  for (const [key, keys] of scoped) out[key] = [...keys].sort()
  return out
}

const sorted = (keys: Iterable<string>) => [...keys].sort()

/** The keys of `a` that `b` does not hold, sorted. */
const minus = (a: ReadonlySet<string>, b: ReadonlySet<string>): Array<string> => {
  const out: Array<string> = []
  for (const key of a) if (!b.has(key)) out.push(key)
  return out.sort()
}

/** By resource, the keys of `a` that `b` does not hold there. */
const scopedMinus = (a: ScopedSets, b: ScopedSets): ScopedKeys => {
  const out: Record<string, ReadonlyArray<string>> = {}
  for (const [key, keys] of a) {
    const missing = minus(keys, b.get(key) ?? noKeys)
    if (missing.length > 0) out[key] = missing
  }
  return out
}

const isEmptyRecord = (scoped: ScopedKeys | undefined) => {
  for (const _ in scoped) return false
  return true
}

export const fromSnapshot = (snapshot: Snapshot): EffectiveSet => ({
  revision: BigInt(snapshot.revision),
  permissions: new Set(snapshot.permissions),
  scoped: toSets(snapshot.scoped),
  scopedDenied: toSets(snapshot.scopedDenied ?? {}),
  roles: [...snapshot.roles]
})

/** The set as a `hello` carries it: keys sorted. */
export const toSnapshot = (set: EffectiveSet): Snapshot & { readonly scopedDenied: ScopedKeys } => ({
  revision: set.revision.toString(),
  permissions: sorted(set.permissions),
  scoped: toRecord(set.scoped),
  scopedDenied: toRecord(set.scopedDenied),
  roles: set.roles
})

/** Everything that differs between `from` and `to` (roles and revision aside). */
export const changes = (from: EffectiveSet, to: EffectiveSet): Change => ({
  added: minus(to.permissions, from.permissions),
  removed: minus(from.permissions, to.permissions),
  scopedAdded: scopedMinus(to.scoped, from.scoped),
  scopedRemoved: scopedMinus(from.scoped, to.scoped),
  scopedDeniedAdded: scopedMinus(to.scopedDenied, from.scopedDenied),
  scopedDeniedRemoved: scopedMinus(from.scopedDenied, to.scopedDenied)
})

export const isEmptyChange = (change: Diff | Change) =>
  change.added.length === 0 &&
  change.removed.length === 0 &&
  isEmptyRecord(change.scopedAdded) &&
  isEmptyRecord(change.scopedRemoved) &&
  isEmptyRecord(change.scopedDeniedAdded) &&
  isEmptyRecord(change.scopedDeniedRemoved)

/**
 * The frame that takes `from` to `to`, at `to`'s revision; only the resource parts holding
 * something, and the role names when they changed.
 */
export const diff = (from: EffectiveSet, to: EffectiveSet): Diff => {
  const change = changes(from, to)
  const out: { -readonly [K in keyof Diff]: Diff[K] } = {
    revision: to.revision.toString(),
    added: change.added,
    removed: change.removed
  }
  if (!isEmptyRecord(change.scopedAdded)) out.scopedAdded = change.scopedAdded
  if (!isEmptyRecord(change.scopedRemoved)) out.scopedRemoved = change.scopedRemoved
  if (!isEmptyRecord(change.scopedDeniedAdded)) out.scopedDeniedAdded = change.scopedDeniedAdded
  if (!isEmptyRecord(change.scopedDeniedRemoved)) out.scopedDeniedRemoved = change.scopedDeniedRemoved
  if (rolesChanged(from, to)) out.roles = to.roles
  return out
}

/** Whether a frame changes nothing at all: no key, and no role name. */
export const isEmptyDiff = (frame: Diff) => isEmptyChange(frame) && frame.roles === undefined

/** Whether the role names differ (a rename changes no key, but the client shows them). */
export const rolesChanged = (from: EffectiveSet, to: EffectiveSet) =>
  from.roles.length !== to.roles.length || from.roles.some((role, i) => role !== to.roles[i])

const addScoped = (sets: ScopedSets, add: ScopedKeys | undefined, remove: ScopedKeys | undefined): ScopedSets => {
  if (isEmptyRecord(add) && isEmptyRecord(remove)) return sets
  const out = new Map(sets)
  for (const key in add) {
    const next = new Set(out.get(key) ?? noKeys)
    for (const permission of add[key]!) next.add(permission)
    if (next.size > 0) out.set(key, next)
  }
  for (const key in remove) {
    const current = out.get(key)
    if (current === undefined) continue
    const next = new Set(current)
    for (const permission of remove[key]!) next.delete(permission)
    if (next.size > 0) out.set(key, next)
    else out.delete(key)
  }
  return out
}

/**
 * `set` with `frame` applied, at the frame's revision, and what actually changed (a key the set
 * already held is not reported as added). The roles are the frame's when it carries them, else kept.
 */
export const applyDiff = (set: EffectiveSet, frame: Diff): { readonly set: EffectiveSet; readonly change: Change } => {
  const permissions = new Set(set.permissions)
  for (const key of frame.added) permissions.add(key)
  for (const key of frame.removed) permissions.delete(key)
  const next: EffectiveSet = {
    revision: BigInt(frame.revision),
    permissions,
    scoped: addScoped(set.scoped, frame.scopedAdded, frame.scopedRemoved),
    scopedDenied: addScoped(set.scopedDenied, frame.scopedDeniedAdded, frame.scopedDeniedRemoved),
    roles: frame.roles === undefined ? set.roles : [...frame.roles]
  }
  return { set: next, change: changes(set, next) }
}

/** `snapshot` replacing `set`, and what changed. */
export const applySnapshot = (
  set: EffectiveSet,
  snapshot: Snapshot
): { readonly set: EffectiveSet; readonly change: Change } => {
  const next = fromSnapshot(snapshot)
  return { set: next, change: changes(set, next) }
}

/**
 * Allowed? Without a resource: held organization-wide. On a resource (`type/id`):
 * allowed = (permissions − scopedDenied[resource]) ∪ scoped[resource].
 */
export const can = (set: EffectiveSet, permission: string, resource?: string): boolean => {
  if (resource === undefined) return set.permissions.has(permission)
  if (set.scoped.get(resource)?.has(permission) === true) return true
  return set.permissions.has(permission) && set.scopedDenied.get(resource)?.has(permission) !== true
}

/** Same keys everywhere (roles and revision aside). */
export const sameKeys = (a: EffectiveSet, b: EffectiveSet) => isEmptyChange(changes(a, b))
