/**
 * KeyValueStore: short-lived string values with a time to live and atomic single-use operations.
 *
 * Owns: tickets, one-time tokens, revoked-session markers, counters that expire.
 * Does not own: anything that must survive the store losing its data (that lives in Postgres).
 */
import { Context, Data, type Duration, type Effect, type Option } from "effect"

export class KeyValueError extends Data.TaggedError("KeyValueError")<{
  readonly operation: string
  readonly cause: unknown
}> {}

export interface KeyValueStoreShape {
  readonly get: (key: string) => Effect.Effect<Option.Option<string>, KeyValueError>
  /** Several values in one round trip, in the order of the keys. */
  readonly getMany: (keys: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<Option.Option<string>>, KeyValueError>
  readonly set: (key: string, value: string, ttl: Duration.DurationInput) => Effect.Effect<void, KeyValueError>
  /** Sets only when the key is absent; true when it was set. */
  readonly setIfAbsent: (
    key: string,
    value: string,
    ttl: Duration.DurationInput
  ) => Effect.Effect<boolean, KeyValueError>
  /** Reads and deletes in one step: of many concurrent callers, exactly one gets the value. */
  readonly consume: (key: string) => Effect.Effect<Option.Option<string>, KeyValueError>
  /** Replaces the value only if it still equals `expected`; true when replaced. */
  readonly compareAndSet: (
    key: string,
    expected: string,
    value: string,
    ttl: Duration.DurationInput
  ) => Effect.Effect<boolean, KeyValueError>
  /** Deletes only if the value equals `expected`; true when deleted. */
  readonly compareAndDelete: (key: string, expected: string) => Effect.Effect<boolean, KeyValueError>
  /** Adds one; the time to live starts with the first increment. Returns the new count. */
  readonly increment: (key: string, ttl: Duration.DurationInput) => Effect.Effect<number, KeyValueError>
  readonly delete: (key: string) => Effect.Effect<void, KeyValueError>
}

export class KeyValueStore extends Context.Tag("app/KeyValueStore")<KeyValueStore, KeyValueStoreShape>() {}
