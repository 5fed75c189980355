/**
 * EventStream: an append-only, size-capped log that every node reads from its own cursor.
 *
 * Owns: appending entries, reading after a cursor (optionally blocking), telling a reader that its
 * cursor fell out of the retained range (trimmed, or the backing store lost its data), and which
 * readers have said, recently enough, how far they have applied a stream.
 * Does not own: what the entries mean, delivery guarantees (the outbox in Postgres is the truth),
 * or consumer groups.
 */
import { Context, Data, type Duration, type Effect } from "effect"

/** Position in a stream: `"<ms>-<seq>"`. `StreamCursor.start` reads from the beginning. */
export type StreamCursor = string

export const StreamCursor = {
  start: "0-0" as StreamCursor,
  compare(a: StreamCursor, b: StreamCursor): -1 | 0 | 1 {
    const [am, as] = parse(a)
    const [bm, bs] = parse(b)
    if (am !== bm) return am < bm ? -1 : 1
    if (as !== bs) return as < bs ? -1 : 1
    return 0
  }
}

const parse = (cursor: StreamCursor): readonly [bigint, bigint] => {
  const [ms = "0", seq = "0"] = cursor.split("-")
  return [BigInt(ms), BigInt(seq)]
}

export interface StreamEntry {
  readonly id: StreamCursor
  readonly payload: string
}

export interface ReadResult {
  readonly entries: ReadonlyArray<StreamEntry>
  /**
   * True when entries after the cursor may have been lost: the oldest retained entry is newer
   * than the cursor, or the stream is gone or shorter than the cursor (store restarted empty).
   * The reader should then rebuild its state from the source of truth.
   */
  readonly gap: boolean
}

export class EventStreamError extends Data.TaggedError("EventStreamError")<{
  readonly operation: string
  readonly cause: unknown
}> {}

export interface ReadOptions {
  readonly count?: number
  /** Wait up to this long for new entries when none are there yet. */
  readonly block?: Duration.DurationInput
}

export interface EventStreamShape {
  readonly append: (
    stream: string,
    payload: string,
    options?: { readonly maxLength?: number }
  ) => Effect.Effect<StreamEntry["id"], EventStreamError>
  readonly read: (
    stream: string,
    after: StreamCursor,
    options?: ReadOptions
  ) => Effect.Effect<ReadResult, EventStreamError>
  /** The id of the newest entry, or `StreamCursor.start` when the stream is empty. */
  readonly last: (stream: string) => Effect.Effect<StreamCursor, EventStreamError>
  /** Succeeds when the backing store answers. */
  readonly ping: Effect.Effect<void, EventStreamError>
  /**
   * A reader's word that it has applied `stream` up to `cursor`, good for `ttl` from when the
   * store takes it (the store's clock): `readers` lists every reader whose word still holds.
   */
  readonly acknowledge: (
    stream: string,
    reader: string,
    cursor: StreamCursor,
    ttl: Duration.Duration
  ) => Effect.Effect<void, EventStreamError>
  readonly readers: (stream: string) => Effect.Effect<ReadonlyArray<ReaderPosition>, EventStreamError>
}

export interface ReaderPosition {
  readonly reader: string
  readonly cursor: StreamCursor
}

export class EventStream extends Context.Tag("app/EventStream")<EventStream, EventStreamShape>() {}
