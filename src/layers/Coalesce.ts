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

/**
 * Batched reads: the keys asked for while a batch waits to start are read together by `readMany`
 * (which answers in the order of the keys it is given), so concurrent requests cost one round
 * trip between them. A batch starts after each of its callers asked, and only when the previous
 * batch is done. A failure of the batch fails each of its callers.
 */
export const batched = <K, A, E>(
  readMany: (keys: ReadonlyArray<K>) => Effect.Effect<ReadonlyArray<A>, E>
): ((key: K) => Effect.Effect<A, E>) => {
  let waiting: Array<{ readonly key: K; readonly deferred: Deferred.Deferred<A, E> }> | undefined
  let running: Deferred.Deferred<void> | undefined

  const run = (batch: NonNullable<typeof waiting>, done: Deferred.Deferred<void>) =>
    Effect.suspend(() => {
      waiting = undefined
      running = done
      return Effect.exit(readMany(batch.map((item) => item.key))).pipe(
        Effect.flatMap((exit) =>
          Effect.forEach(
            batch,
            (item, i) =>
              Deferred.done(
                item.deferred,
                Exit.map(exit, (values) => values[i]!)
              ),
            { discard: true }
          )
        ),
        Effect.ensuring(
          Effect.suspend(() => {
            if (running === done) running = undefined
            return Deferred.done(done, Exit.void)
          })
        )
      )
    })

  return (key) =>
    Effect.suspend(() => {
      const deferred = Deferred.unsafeMake<A, E>(FiberId.none)
      if (waiting !== undefined) {
        waiting.push({ key, deferred })
        return Deferred.await(deferred)
      }
      const batch = [{ key, deferred }]
      waiting = batch
      const done = Deferred.unsafeMake<void>(FiberId.none)
      const ahead = running
      const start =
        ahead === undefined
          ? Effect.zipRight(Effect.yieldNow(), run(batch, done))
          : Effect.zipRight(Deferred.await(ahead), run(batch, done))
      return Effect.zipRight(Effect.forkDaemon(start), Deferred.await(deferred))
    })
}
