/**
 * The live client's copy of its session's set, fed with `hello` and `permissions` frames: the
 * rules are domain/EffectiveSet's, the same the server diffs with. No I/O, no timers.
 */
import * as EffectiveSet from "../domain/EffectiveSet.ts"
import type { Resource, ScopedKeys } from "./LiveClientTypes.ts"
import type { ServerMessage } from "./LiveProtocol.ts"

type Hello = Extract<ServerMessage, { type: "hello" }>
type Diff = Extract<ServerMessage, { type: "permissions" }>

export class LivePermissions {
  private set: EffectiveSet.EffectiveSet = EffectiveSet.empty
  /** False until the first `hello`: there is no revision before it. */
  private known = false
  /** The organization-wide keys, updated in place: whoever holds this set never sees an old one. */
  readonly permissions = new Set<string>()
  ids = { sessionId: "", userId: "", organizationId: "" }

  get revision(): string | undefined {
    return this.known ? this.set.revision.toString() : undefined
  }
  get scoped(): ScopedKeys {
    return EffectiveSet.toRecord(this.set.scoped)
  }
  get scopedDenied(): ScopedKeys {
    return EffectiveSet.toRecord(this.set.scopedDenied)
  }
  get roles(): ReadonlyArray<string> {
    return this.set.roles
  }

  /** Revisions are compared as integers ("10" > "9"); a frame behind the held set is ignored. */
  isBehind(revision: string): boolean {
    return this.known && BigInt(revision) < this.set.revision
  }

  reached(target: bigint): boolean {
    return this.known && this.set.revision >= target
  }

  /**
   * Replaces everything with `hello`, unless it is behind the held set. The first `hello` of a
   * socket is `authoritative`: the server answers a resume at a revision the organization never
   * reached (a restored database, say) with its current set, and that set is the truth.
   */
  applyHello(hello: Hello, authoritative: boolean): EffectiveSet.Change | undefined {
    if (!authoritative && this.isBehind(hello.revision)) return undefined
    const { set, change } = EffectiveSet.applySnapshot(this.set, hello)
    this.ids = { sessionId: hello.sessionId, userId: hello.userId, organizationId: hello.organizationId }
    return this.adopt(set, change)
  }

  /** Applies a diff unless it is behind the held set; what it actually changed. */
  applyDiff(diff: Diff): EffectiveSet.Change | undefined {
    if (this.isBehind(diff.revision)) return undefined
    const { set, change } = EffectiveSet.applyDiff(this.set, diff)
    return this.adopt(set, change)
  }

  /** Empties the set (the session ended), keeping its revision; what was removed. */
  clear(): EffectiveSet.Change {
    const { set, change } = EffectiveSet.applySnapshot(this.set, {
      revision: this.set.revision.toString(),
      permissions: [],
      scoped: {},
      roles: []
    })
    this.set = set
    this.permissions.clear()
    return change
  }

  /** allowed = (permissions − scopedDenied[resource]) ∪ scoped[resource]; see EffectiveSet.can. */
  can(permission: string, resource?: Resource): boolean {
    return EffectiveSet.can(this.set, permission, resource && EffectiveSet.resourceKey(resource))
  }

  private adopt(set: EffectiveSet.EffectiveSet, change: EffectiveSet.Change): EffectiveSet.Change {
    this.set = set
    this.known = true
    for (const key of change.removed) this.permissions.delete(key)
    for (const key of change.added) this.permissions.add(key)
    return change
  }
}
