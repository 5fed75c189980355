import { Clock, Deferred, Effect, FiberId } from "effect"

/**
 * What the in-memory event stream and work queue share: Redis-style ids (`<ms>-<seq>`, the clock's
 * millisecond and a sequence within it) and a signal that wakes the readers waiting for more.
 */
export interface MemoryLog {
  lastMs: number
  lastSeq: number
  /** Completed, and replaced by a fresh one, at each append. */
  appended: Deferred.Deferred<void>
}

export const emptyLog = (): MemoryLog => ({ lastMs: 0, lastSeq: 0, appended: Deferred.unsafeMake(FiberId.none) })

/** Takes the next id, lets `add` store the entry under it, wakes the waiting readers and returns the id. */
export const appendTo = (log: MemoryLog, add: (id: string) => void) =>
  Effect.gen(function* () {
    const now = yield* Clock.currentTimeMillis
    if (now > log.lastMs) {
      log.lastMs = now
      log.lastSeq = 0
    } else {
      log.lastSeq += 1
    }
    const id = `${log.lastMs}-${log.lastSeq}`
    add(id)
    const appended = log.appended
    log.appended = Deferred.unsafeMake(FiberId.none)
    yield* Deferred.succeed(appended, undefined)
    return id
  })
