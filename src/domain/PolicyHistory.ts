/**
 * What a run of an organization's recorded events changed, revision by revision, as far as
 * permissions go: either the policy (roles, grants, parents, catalog, status, or anything this
 * module does not know), or only some users' assignments and membership. A cache keeps these to
 * tell whether something it computed at an older revision still holds at the current one.
 */

/** Events that change only the user they name; any other event may change everyone. */
export const USER_EVENTS: ReadonlySet<string> = new Set([
  "assignment.added",
  "assignment.removed",
  "assignment.expired",
  "member.added",
  "member.removed",
  "user.disabled",
  "user.enabled"
])

export interface RecordedEvent {
  readonly revision: bigint
  readonly type: string
  /** The user the payload names, if any. */
  readonly userId: string | undefined
}

export interface Change {
  readonly revision: bigint
  /** The policy changed (roles, grants, parents, catalog, status), or the history is unknown. */
  readonly all: boolean
  readonly users: ReadonlySet<string>
}

/**
 * The change of each revision after `from` up to `to`, oldest first, or `undefined` when some
 * revision in between has no event (not recorded, or past retention): then nothing is known.
 */
export const changesBetween = (
  events: ReadonlyArray<RecordedEvent>,
  from: bigint,
  to: bigint
): ReadonlyArray<Change> | undefined => {
  const changes = new Map<bigint, { all: boolean; users: Set<string> }>()
  for (const event of events) {
    if (event.revision <= from || event.revision > to) continue
    const change = changes.get(event.revision) ?? { all: false, users: new Set<string>() }
    if (USER_EVENTS.has(event.type) && event.userId !== undefined) change.users.add(event.userId)
    else change.all = true
    changes.set(event.revision, change)
  }
  // Every revision has events; one without any was not recorded (or is past retention).
  if (BigInt(changes.size) !== to - from) return undefined
  return [...changes]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([revision, change]): Change => ({ revision, ...change }))
}

/**
 * Whether nothing after revision `from`, up to `current`, touched the user, according to
 * `history` (the changes known up to `current`, oldest first). Unknown history counts as changed.
 */
export const unchangedSince = (
  history: ReadonlyArray<Change>,
  current: bigint,
  from: bigint,
  userId: string
): boolean => {
  if (from > current) return false
  if (from === current) return true
  const oldest = history[0]?.revision
  if (oldest === undefined || oldest > from + 1n) return false
  return history.every((change) => change.revision <= from || (!change.all && !change.users.has(userId)))
}
