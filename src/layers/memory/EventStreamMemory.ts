import { Clock, Deferred, Duration, Effect, Layer } from "effect"
import {
  EventStream,
  type ReaderPosition,
  type ReadResult,
  StreamCursor,
  type StreamEntry
} from "../../services/EventStream.ts"
import { spanned } from "../../services/Span.ts"
import { appendTo, emptyLog, type MemoryLog } from "./MemoryLog.ts"

interface MemoryStream extends MemoryLog {
  readonly entries: Array<StreamEntry>
}

/** In-process event stream for the embedded single-node mode and as a test fake. */
export const make = Effect.sync(() => {
  const streams = new Map<string, MemoryStream>()
  /** stream → reader → its position and until when its word holds (ms). */
  const acknowledged = new Map<string, Map<string, { readonly cursor: StreamCursor; readonly until: number }>>()

  const streamFor = (name: string) => {
    let stream = streams.get(name)
    if (stream === undefined) {
      stream = { ...emptyLog(), entries: [] }
      streams.set(name, stream)
    }
    return stream
  }

  const after = (stream: MemoryStream | undefined, cursor: StreamCursor, count: number): ReadResult => {
    if (stream === undefined || stream.entries.length === 0) {
      return { entries: [], gap: StreamCursor.compare(cursor, StreamCursor.start) > 0 }
    }
    const first = stream.entries[0]!
    const last = stream.entries[stream.entries.length - 1]!
    const gap = StreamCursor.compare(cursor, first.id) < 0 && cursor !== StreamCursor.start
    const lost = StreamCursor.compare(cursor, last.id) > 0
    const entries: Array<StreamEntry> = []
    for (const entry of stream.entries) {
      if (entries.length >= count) break
      if (StreamCursor.compare(entry.id, cursor) > 0) entries.push(entry)
    }
    return { entries, gap: gap || lost }
  }

  return EventStream.of({
    append: spanned("EventStream.append", (name, payload, options) =>
      Effect.suspend(() => {
        const stream = streamFor(name)
        return appendTo(stream, (id) => {
          stream.entries.push({ id, payload })
          const maxLength = options?.maxLength
          if (maxLength !== undefined && stream.entries.length > maxLength) {
            stream.entries.splice(0, stream.entries.length - maxLength)
          }
        })
      })
    ),
    read: spanned("EventStream.read", (name, cursor, options) =>
      Effect.suspend(() => {
        const count = options?.count ?? 100
        const result = after(streams.get(name), cursor, count)
        if (result.entries.length > 0 || result.gap || options?.block === undefined) return Effect.succeed(result)
        const stream = streamFor(name)
        return Deferred.await(stream.appended).pipe(
          Effect.timeout(Duration.decode(options.block)),
          Effect.ignore,
          Effect.map(() => after(stream, cursor, count))
        )
      })
    ),
    last: spanned("EventStream.last", (name) =>
      Effect.sync(() => streams.get(name)?.entries.at(-1)?.id ?? StreamCursor.start)
    ),
    ping: Effect.withSpan(Effect.void, "EventStream.ping"),
    acknowledge: (name, reader, cursor, ttl) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const readers = acknowledged.get(name) ?? new Map()
        acknowledged.set(name, readers)
        readers.set(reader, { cursor, until: now + Duration.toMillis(ttl) })
      }),
    readers: (name) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const readers = acknowledged.get(name)
        const positions: Array<ReaderPosition> = []
        for (const [reader, { cursor, until }] of readers ?? []) {
          if (until <= now) readers!.delete(reader)
          else positions.push({ reader, cursor })
        }
        return positions
      })
  })
})

export const EventStreamMemory = Layer.effect(EventStream, make)
