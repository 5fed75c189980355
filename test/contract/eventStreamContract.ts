import { randomUUID } from "node:crypto"
import { expect, layer } from "@effect/vitest"
import { Duration, Effect, Fiber, type Layer, Option } from "effect"
import { EventStream, type ReadResult, StreamCursor } from "../../src/services/EventStream.ts"

const fresh = (label: string) => `${label}:${randomUUID()}`
const payloads = (result: ReadResult) => result.entries.map((entry) => entry.payload)
const millis = Duration.toMillis

const appendAll = (stream: string, values: ReadonlyArray<string>, options?: { readonly maxLength?: number }) =>
  Effect.flatMap(EventStream, (events) => Effect.forEach(values, (value) => events.append(stream, value, options)))

/** What every EventStream implementation promises its callers; runs on the real clock. */
export const eventStreamContract = (name: string, implementation: Layer.Layer<EventStream, unknown>) =>
  layer(implementation, { excludeTestServices: true })(`EventStream contract (${name})`, (it) => {
    const test = (title: string, body: () => Effect.Effect<void, unknown, EventStream>) => it.effect(title, body)

    test("append returns strictly increasing ids", () =>
      Effect.gen(function* () {
        const ids = yield* appendAll(
          fresh("ids"),
          Array.from({ length: 50 }, (_, i) => `e${i}`)
        )
        for (let i = 1; i < ids.length; i++) expect(StreamCursor.compare(ids[i - 1]!, ids[i]!)).toBe(-1)
      }))

    test("a read from the start returns every entry in order with its payload intact", () =>
      Effect.gen(function* () {
        const events = yield* EventStream
        const stream = fresh("payloads")
        const json = { type: "grant", roles: ["admin", "viewer"], nested: { n: 1.5, text: "a\nb" } }
        const values = ["plain", "", "p", "ünïcödé ✓ 日本語 🎉", JSON.stringify(json), 'tab\t"quoted"\r\n']
        const ids = yield* appendAll(stream, values)

        const result = yield* events.read(stream, StreamCursor.start)
        expect(result.gap).toBe(false)
        expect(result.entries.map((entry) => entry.id)).toEqual(ids)
        expect(payloads(result)).toEqual(values)
        expect(JSON.parse(result.entries[4]!.payload)).toEqual(json)
      }))

    test("a read after a cursor returns only the later entries", () =>
      Effect.gen(function* () {
        const events = yield* EventStream
        const stream = fresh("after")
        const ids = yield* appendAll(stream, ["a", "b", "c", "d", "e"])

        const later = yield* events.read(stream, ids[1]!)
        expect(later).toEqual({ entries: [2, 3, 4].map((i) => ({ id: ids[i], payload: "abcde"[i] })), gap: false })
        expect(yield* events.read(stream, ids[4]!)).toEqual({ entries: [], gap: false })
      }))

    test("count limits the batch, and paging with the last id read continues where it stopped", () =>
      Effect.gen(function* () {
        const events = yield* EventStream
        const stream = fresh("count")
        yield* appendAll(stream, ["0", "1", "2", "3", "4", "5", "6"])

        const first = yield* events.read(stream, StreamCursor.start, { count: 3 })
        expect(payloads(first)).toEqual(["0", "1", "2"])
        const second = yield* events.read(stream, first.entries[2]!.id, { count: 3 })
        expect(payloads(second)).toEqual(["3", "4", "5"])
        const third = yield* events.read(stream, second.entries[2]!.id, { count: 3 })
        expect(payloads(third)).toEqual(["6"])
      }))

    test("last gives the newest id, and the start cursor for an unknown stream", () =>
      Effect.gen(function* () {
        const events = yield* EventStream
        const stream = fresh("last")
        expect(yield* events.last(stream)).toBe(StreamCursor.start)
        const ids = yield* appendAll(stream, ["a", "b", "c"])
        expect(yield* events.last(stream)).toBe(ids[2])
      }))

    test("a read from the start of an unknown stream has no entries and no gap", () =>
      Effect.gen(function* () {
        const events = yield* EventStream
        expect(yield* events.read(fresh("unknown"), StreamCursor.start)).toEqual({ entries: [], gap: false })
      }))

    test("a blocking read at the tail returns as soon as another fiber appends", () =>
      Effect.gen(function* () {
        const events = yield* EventStream
        const stream = fresh("wake")
        const tail = yield* events.append(stream, "old")
        const reader = yield* Effect.fork(Effect.timed(events.read(stream, tail, { block: "2 seconds" })))
        yield* Effect.sleep("100 millis")
        const id = yield* events.append(stream, "new")

        const [elapsed, result] = yield* Fiber.join(reader)
        expect(result).toEqual({ entries: [{ id, payload: "new" }], gap: false })
        expect(millis(elapsed)).toBeLessThan(1_000)
      }))

    test("a blocking read returns nothing after about the block time when nothing is appended", () =>
      Effect.gen(function* () {
        const events = yield* EventStream
        const stream = fresh("idle")
        const tail = yield* events.append(stream, "only")
        const [elapsed, result] = yield* Effect.timed(events.read(stream, tail, { block: "600 millis" }))
        expect(result).toEqual({ entries: [], gap: false })
        expect(millis(elapsed)).toBeGreaterThanOrEqual(550)
        expect(millis(elapsed)).toBeLessThan(1_600)
      }))

    test("blocking reads on different streams do not wait for each other", () =>
      Effect.gen(function* () {
        const events = yield* EventStream
        const streams = [fresh("a"), fresh("b"), fresh("c")]
        const readers = yield* Effect.forEach(streams, (stream) =>
          Effect.fork(events.read(stream, StreamCursor.start, { block: "1500 millis" }))
        )
        const [elapsed] = yield* Effect.timed(
          Effect.gen(function* () {
            yield* Effect.sleep("100 millis")
            // The reader started last wakes while the others are still blocked.
            yield* events.append(streams[2]!, "to c")
            expect(payloads(yield* Fiber.join(readers[2]!))).toEqual(["to c"])
            expect(Option.isNone(yield* Fiber.poll(readers[0]!))).toBe(true)
            expect(Option.isNone(yield* Fiber.poll(readers[1]!))).toBe(true)
            yield* events.append(streams[0]!, "to a")
            yield* events.append(streams[1]!, "to b")
            expect(payloads(yield* Fiber.join(readers[0]!))).toEqual(["to a"])
            expect(payloads(yield* Fiber.join(readers[1]!))).toEqual(["to b"])
          })
        )
        expect(millis(elapsed)).toBeLessThan(1_000)
      }))

    test("an interrupted blocking read stops at once and the stream keeps working", () =>
      Effect.gen(function* () {
        const events = yield* EventStream
        const stream = fresh("interrupt")
        const tail = yield* events.append(stream, "old")
        const [elapsed, timedOut] = yield* Effect.timed(
          events.read(stream, tail, { block: "2 seconds" }).pipe(Effect.timeout("100 millis"), Effect.option)
        )
        expect(Option.isNone(timedOut)).toBe(true)
        expect(millis(elapsed)).toBeLessThan(1_000)

        const reader = yield* Effect.fork(events.read(stream, tail, { block: "2 seconds" }))
        yield* Effect.sleep("100 millis")
        yield* events.append(stream, "new")
        expect(payloads(yield* Fiber.join(reader))).toEqual(["new"])
      }))

    test("with maxLength, a cursor older than the retained entries reports a gap", () =>
      Effect.gen(function* () {
        const events = yield* EventStream
        const stream = fresh("trim")
        // Redis trims approximately, in whole nodes of 100 entries: append enough that it surely does.
        const values = Array.from({ length: 500 }, (_, i) => `e${i}`)
        const ids = yield* appendAll(stream, values, { maxLength: 5 })

        const retained = yield* events.read(stream, StreamCursor.start, { count: 1_000 })
        expect(retained.gap).toBe(false)
        expect(retained.entries.length).toBeLessThan(values.length)
        expect(payloads(retained).slice(-5)).toEqual(values.slice(-5))

        const early = yield* events.read(stream, ids[1]!, { count: 1_000 })
        expect(early.gap).toBe(true)
        expect(early.entries.length).toBeGreaterThan(0)
        expect(StreamCursor.compare(early.entries[0]!.id, ids[2]!)).toBe(1)

        const recent = yield* events.read(stream, ids[values.length - 5]!)
        expect(recent.gap).toBe(false)
        expect(payloads(recent)).toEqual(values.slice(-4))
      }))

    test("a cursor newer than anything in the stream (the store lost its data) reports a gap", () =>
      Effect.gen(function* () {
        const events = yield* EventStream
        const lost = "99999999999999-0"
        expect(yield* events.read(fresh("empty"), lost)).toEqual({ entries: [], gap: true })

        const stream = fresh("restarted")
        yield* events.append(stream, "after the restart")
        expect(yield* events.read(stream, lost)).toEqual({ entries: [], gap: true })
      }))

    test("a blocking read from a lost cursor reports the gap without waiting for the block time", () =>
      Effect.gen(function* () {
        const events = yield* EventStream
        const [elapsed, result] = yield* Effect.timed(
          events.read(fresh("lost"), "99999999999999-0", { block: "2 seconds" })
        )
        expect(result).toEqual({ entries: [], gap: true })
        expect(millis(elapsed)).toBeLessThan(1_000)
      }))

    test("ping succeeds", () => Effect.flatMap(EventStream, (events) => events.ping))

    test("readers lists each reader's latest position while its word holds, and forgets it after", () =>
      Effect.gen(function* () {
        const events = yield* EventStream
        const stream = fresh("readers")
        expect(yield* events.readers(stream)).toEqual([])
        yield* events.acknowledge(stream, "a", "5-0", Duration.seconds(30))
        yield* events.acknowledge(stream, "b", "3-1", Duration.millis(300))
        yield* events.acknowledge(stream, "a", "7-2", Duration.seconds(30))
        const sorted = (positions: ReadonlyArray<{ reader: string; cursor: string }>) =>
          [...positions].sort((x, y) => x.reader.localeCompare(y.reader))
        expect(sorted(yield* events.readers(stream))).toEqual([
          { reader: "a", cursor: "7-2" },
          { reader: "b", cursor: "3-1" }
        ])
        yield* Effect.sleep(Duration.millis(500))
        expect(yield* events.readers(stream)).toEqual([{ reader: "a", cursor: "7-2" }])
        // A reader whose word ran out and who speaks again is listed again.
        yield* events.acknowledge(stream, "b", "8-0", Duration.seconds(30))
        expect(sorted(yield* events.readers(stream))).toEqual([
          { reader: "a", cursor: "7-2" },
          { reader: "b", cursor: "8-0" }
        ])
        expect(yield* events.readers(fresh("other"))).toEqual([])
      }))
  })
