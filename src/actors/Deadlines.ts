/**
 * A timer wheel: items due at a time, in buckets of `step` ms, all served by one sleeping fiber.
 * Thousands of live sessions each waiting for their absolute expiry (or for a slow client to
 * drain) cost a map entry each, not a fiber each. An item is due at the end of its bucket, never
 * before the time it was given; an item added again replaces its earlier deadline.
 */
import { type Clock, Duration, Effect, Fiber } from "effect"

/** Starts a fiber from code that is not itself an effect (a socket callback, the router). */
export type RunFork = <A, E>(effect: Effect.Effect<A, E>) => Fiber.RuntimeFiber<A, E>

interface Wake {
  readonly bucket: number
  fired: boolean
  fiber: Fiber.RuntimeFiber<void> | undefined
}

export class Deadlines<T> {
  private readonly bucketOf = new Map<T, number>()
  private readonly buckets = new Map<number, Set<T>>()
  private wake: Wake | undefined

  constructor(
    private readonly step: number,
    private readonly clock: Clock.Clock,
    private readonly runFork: RunFork,
    private readonly onDue: (item: T) => void
  ) {}

  get size() {
    return this.bucketOf.size
  }

  /** `item` is due at `at` (ms since the epoch) or at most one step later. */
  add(item: T, at: number) {
    this.remove(item)
    const bucket = Math.ceil(at / this.step)
    this.bucketOf.set(item, bucket)
    const set = this.buckets.get(bucket)
    if (set === undefined) this.buckets.set(bucket, new Set([item]))
    else set.add(item)
    if (this.wake === undefined || bucket < this.wake.bucket) this.schedule(bucket)
  }

  remove(item: T) {
    const bucket = this.bucketOf.get(item)
    if (bucket === undefined) return
    this.bucketOf.delete(item)
    const set = this.buckets.get(bucket)
    set?.delete(item)
    if (set?.size === 0) this.buckets.delete(bucket)
  }

  private schedule(bucket: number) {
    const before = this.wake
    const wait = Math.max(0, bucket * this.step - this.clock.unsafeCurrentTimeMillis())
    const wake: Wake = { bucket, fired: false, fiber: undefined }
    this.wake = wake
    const fiber = this.runFork(Effect.sleep(Duration.millis(wait)).pipe(Effect.andThen(() => this.fire(wake))))
    if (!wake.fired) wake.fiber = fiber
    if (before !== undefined && !before.fired) {
      before.fired = true
      if (before.fiber !== undefined) this.runFork(Fiber.interrupt(before.fiber))
    }
  }

  /** Serves the due buckets, unless a wake-up for an earlier bucket replaced this one. */
  private fire(wake: Wake) {
    if (wake.fired || this.wake !== wake) return
    wake.fired = true
    this.wake = undefined
    const now = Math.floor(this.clock.unsafeCurrentTimeMillis() / this.step)
    let next: number | undefined
    for (const [bucket, items] of [...this.buckets]) {
      if (bucket > now) {
        if (next === undefined || bucket < next) next = bucket
        continue
      }
      this.buckets.delete(bucket)
      for (const item of items) {
        this.bucketOf.delete(item)
        this.onDue(item)
      }
    }
    // `onDue` may have added earlier items, which scheduled their own wake-up.
    const scheduled = this.wake as Wake | undefined
    if (next !== undefined && (scheduled === undefined || next < scheduled.bucket)) this.schedule(next)
  }
}
