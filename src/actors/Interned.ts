/**
 * Effective sets shared by content: every session whose user holds the same keys at the same
 * revision holds the same immutable object, so a node keeps one copy of a set however many
 * sessions (of one user, or of users with the same roles) hold it, and a diff between two sets is
 * computed once. Entries are weak: a set no session holds any more is collected, and its entry
 * with it.
 */
import { createHash } from "node:crypto"
import * as EffectiveSet from "../domain/EffectiveSet.ts"
import type { SessionSnapshot } from "../services/PermissionStore.ts"

type Content = Omit<EffectiveSet.EffectiveSet, "revision">

class WeakValues<V extends object> {
  private readonly entries = new Map<string, WeakRef<V>>()
  private readonly cleanup = new FinalizationRegistry<string>((key) => {
    if (this.entries.get(key)?.deref() === undefined) this.entries.delete(key)
  })

  get size() {
    return this.entries.size
  }

  get(key: string, make: () => V): V {
    const found = this.entries.get(key)?.deref()
    if (found !== undefined) return found
    const value = make()
    this.entries.set(key, new WeakRef(value))
    this.cleanup.register(value, key)
    return value
  }
}

const fingerprint = (snapshot: SessionSnapshot) =>
  createHash("sha256")
    .update(snapshot.permissions.join("\n"))
    .update("\u0000")
    .update(JSON.stringify(snapshot.scoped))
    .update("\u0000")
    .update(JSON.stringify(snapshot.scopedDenied ?? {}))
    .update("\u0000")
    .update(snapshot.roles.join("\n"))
    .digest("base64")

export class Interned {
  private readonly contents = new WeakValues<Content>()
  private readonly sets = new WeakValues<EffectiveSet.EffectiveSet>()
  private readonly lists = new WeakValues<ReadonlyArray<string>>()

  /** How many distinct sets are held now. */
  get size() {
    return this.sets.size
  }

  /** The shared set of a snapshot's keys at its revision. */
  set(snapshot: SessionSnapshot): EffectiveSet.EffectiveSet {
    const print = fingerprint(snapshot)
    return this.sets.get(`${snapshot.revision}/${print}`, () => {
      const content = this.contents.get(print, () => {
        const { revision: _, ...rest } = EffectiveSet.fromSnapshot(snapshot)
        return rest
      })
      return { revision: BigInt(snapshot.revision), ...content }
    })
  }

  /** The shared copy of a list of ids (the roles a session depends on). */
  list(ids: ReadonlyArray<string>): ReadonlyArray<string> {
    return this.lists.get(ids.join("\n"), () => [...ids])
  }
}
