import { Clock, Duration, Effect, Layer, Option, Schedule } from "effect"
import { KeyValueStore } from "../../services/KeyValueStore.ts"
import { spanned } from "../../services/Span.ts"

interface Item {
  readonly value: string
  readonly expiresAt: number
}

/** In-process key-value store for the embedded single-node mode and as a test fake. */
export const make = Effect.gen(function* () {
  const items = new Map<string, Item>()

  const live = (key: string, now: number): Item | undefined => {
    const item = items.get(key)
    if (item === undefined) return undefined
    if (item.expiresAt <= now) {
      items.delete(key)
      return undefined
    }
    return item
  }

  // Expired items are dropped when touched and by this sweep, so unread keys cannot pile up.
  yield* Effect.gen(function* () {
    const now = yield* Clock.currentTimeMillis
    for (const [key, item] of items) if (item.expiresAt <= now) items.delete(key)
  }).pipe(Effect.repeat(Schedule.spaced("30 seconds")), Effect.forkScoped)

  const withNow = <A>(f: (now: number) => A) => Effect.map(Clock.currentTimeMillis, f)
  const put = (key: string, value: string, ttl: Duration.DurationInput, now: number) => {
    items.set(key, { value, expiresAt: now + Duration.toMillis(ttl) })
  }

  return KeyValueStore.of({
    get: spanned("KeyValueStore.get", (key) => withNow((now) => Option.fromNullable(live(key, now)?.value))),
    getMany: spanned("KeyValueStore.getMany", (keys) =>
      withNow((now) => keys.map((key) => Option.fromNullable(live(key, now)?.value)))
    ),
    set: spanned("KeyValueStore.set", (key, value, ttl) => withNow((now) => put(key, value, ttl, now))),
    setIfAbsent: spanned("KeyValueStore.setIfAbsent", (key, value, ttl) =>
      withNow((now) => {
        if (live(key, now) !== undefined) return false
        put(key, value, ttl, now)
        return true
      })
    ),
    consume: spanned("KeyValueStore.consume", (key) =>
      withNow((now) => {
        const item = live(key, now)
        items.delete(key)
        return Option.fromNullable(item?.value)
      })
    ),
    compareAndSet: spanned("KeyValueStore.compareAndSet", (key, expected, value, ttl) =>
      withNow((now) => {
        if (live(key, now)?.value !== expected) return false
        put(key, value, ttl, now)
        return true
      })
    ),
    compareAndDelete: spanned("KeyValueStore.compareAndDelete", (key, expected) =>
      withNow((now) => {
        if (live(key, now)?.value !== expected) return false
        items.delete(key)
        return true
      })
    ),
    increment: spanned("KeyValueStore.increment", (key, ttl) =>
      withNow((now) => {
        const item = live(key, now)
        const count = item === undefined ? 1 : Number(item.value) + 1
        items.set(key, { value: String(count), expiresAt: item?.expiresAt ?? now + Duration.toMillis(ttl) })
        return count
      })
    ),
    delete: spanned("KeyValueStore.delete", (key) => Effect.sync(() => items.delete(key)))
  })
})

export const KeyValueStoreMemory = Layer.scoped(KeyValueStore, make)
