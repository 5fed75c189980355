import { Clock, Deferred, Duration, Effect, Layer } from "effect"
import { EventStream, type ReadResult, StreamCursor, type StreamEntry } from "../../services/EventStream.ts"

interface MemoryStream {
  entries: Array<StreamEntry>
  lastMs: number
  lastSeq: number
  appended: Deferred.Deferred<void>
}

/** In-process event stream for the embedded single-node mode and as a test fake. */
export const make = Effect.gen(function* () {
  const streams = new Map<string, MemoryStream>()

  const streamFor = (name: string) =>
    Effect.gen(function* () {
      let stream = streams.get(name)
      if (stream === undefined) {
        stream = { entries: [], lastMs: 0, lastSeq: 0, appended: yield* Deferred.make<void>() }
        streams.set(name, stream)
      }
      return stream
    })

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
    append: (name, payload, options) =>
      Effect.gen(function* () {
        const stream = yield* streamFor(name)
        const now = yield* Clock.currentTimeMillis
        if (now > stream.lastMs) {
          stream.lastMs = now
          stream.lastSeq = 0
        } else {
          stream.lastSeq += 1
        }
        const id = `${stream.lastMs}-${stream.lastSeq}`
        stream.entries.push({ id, payload })
        const maxLength = options?.maxLength
        if (maxLength !== undefined && stream.entries.length > maxLength) {
          stream.entries.splice(0, stream.entries.length - maxLength)
        }
        const appended = stream.appended
        stream.appended = yield* Deferred.make<void>()
        yield* Deferred.succeed(appended, undefined)
        return id
      }),
    read: (name, cursor, options) =>
      Effect.gen(function* () {
        const count = options?.count ?? 100
        const result = after(streams.get(name), cursor, count)
        if (result.entries.length > 0 || result.gap || options?.block === undefined) return result
        const stream = yield* streamFor(name)
        yield* Deferred.await(stream.appended).pipe(Effect.timeout(Duration.decode(options.block)), Effect.ignore)
        return after(stream, cursor, count)
      }),
    last: (name) => Effect.sync(() => streams.get(name)?.entries.at(-1)?.id ?? StreamCursor.start),
    ping: Effect.void
  })
})

export const EventStreamMemory = Layer.effect(EventStream, make)
