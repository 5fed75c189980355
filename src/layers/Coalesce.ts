/**
 * Coalesced reads: callers asking for the same key while a read of it is waiting to start share
 * that read, so a burst of concurrent requests costs one round trip per key, not one each.
 *
 * What a caller gets was read by a read that *started after it asked* (a caller never joins a read
 * already under way): it reflects everything committed before the caller's request. Per key, at
 * most one read runs and one waits; the waiting one starts when the running one ends, and everyone
 * who arrived meanwhile shares it. A read runs on its own fiber, so an interrupted caller does not
 * cancel it for the others.
 */
import { Deferred, Effect, Exit, FiberId } from "effect"

interface Slot<A, E> {
  running: Deferred.Deferred<A, E> | undefined
  next: Deferred.Deferred<A, E> | undefined
}

export const coalesced = <K, A, E>(read: (key: K) => Effect.Effect<A, E>): ((key: K) => Effect.Effect<A, E>) => {
  const slots = new Map<K, Slot<A, E>>()

  const start = (key: K, slot: Slot<A, E>, deferred: Deferred.Deferred<A, E>): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (slot.next === deferred) slot.next = undefined
      slot.running = deferred
      return Effect.exit(read(key)).pipe(
        Effect.flatMap((exit) => Deferred.done(deferred, exit)),
        Effect.onExit(() =>
          Effect.suspend(() => {
            if (slot.running === deferred) slot.running = undefined
            if (slot.running === undefined && slot.next === undefined && slots.get(key) === slot) slots.delete(key)
            return Deferred.done(deferred, Exit.interrupt(FiberId.none))
          })
        )
      )
    })

  return (key) =>
    Effect.suspend(() => {
      let slot = slots.get(key)
      if (slot === undefined) {
        slot = { running: undefined, next: undefined }
        slots.set(key, slot)
      }
      if (slot.next !== undefined) return Deferred.await(slot.next)
      const deferred = Deferred.unsafeMake<A, E>(FiberId.none)
      slot.next = deferred
      const ahead = slot.running
      const owned = slot
      const run =
        ahead === undefined
          ? start(key, owned, deferred)
          : Effect.zipRight(Effect.exit(Deferred.await(ahead)), start(key, owned, deferred))
      return Effect.zipRight(Effect.forkDaemon(run), Deferred.await(deferred))
    })
}
