import { randomUUID } from "node:crypto"
import { expect, layer } from "@effect/vitest"
import { Clock, Duration, Effect, Exit, HashMap, type Layer, Logger, Schedule, Scope } from "effect"
import { type ConsumeOptions, type Job, WorkQueue } from "../../src/services/WorkQueue.ts"

const fresh = (label: string) => `${label}:${randomUUID()}`
const retryAfter = Duration.millis(200)
const options: ConsumeOptions = { maxAttempts: 3, retryAfter }

/**
 * The least gap between two deliveries of a job that a handler can observe. The queue counts
 * retryAfter from when it handed the job out, the handler stamps when it ran; on a loaded machine
 * the first run may start tens of milliseconds after the hand-out, so the observed gap is shorter
 * than retryAfter by that much. An immediate redelivery (the bug this guards against) is ~0 ms.
 */
const observedRetryGap = Duration.toMillis(retryAfter) / 2

/** Polls `get` until `done` holds; fails after `timeout`. */
const eventually = <A>(get: Effect.Effect<A>, done: (a: A) => boolean, timeout: Duration.DurationInput = "4 seconds") =>
  get.pipe(
    Effect.filterOrFail(done),
    Effect.retry(Schedule.spaced("20 millis")),
    Effect.timeoutFail({ duration: timeout, onTimeout: () => new Error("condition not reached in time") })
  )

/** A handler that records every delivery with the time it arrived. */
const recorder = (behaviour: (job: Job) => Effect.Effect<void, unknown> = () => Effect.void) => {
  const deliveries: Array<Job & { readonly at: number }> = []
  const handler = (job: Job) =>
    Effect.flatMap(Clock.currentTimeMillis, (at) => {
      deliveries.push({ ...job, at })
      return behaviour(job)
    })
  return { deliveries, handler, count: Effect.sync(() => deliveries.length) }
}

/** Every log line, with its annotations, of the fibers started by the test. */
const captureLogs = (lines: Array<string>) =>
  Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ message, annotations }) => {
      lines.push(`${JSON.stringify(message)} ${JSON.stringify(Object.fromEntries(HashMap.toEntries(annotations)))}`)
    })
  )

/**
 * What every WorkQueue implementation promises its callers. Runs on the real clock, the tests
 * concurrently (each on a queue of its own) to keep the waits short.
 */
export const workQueueContract = (name: string, implementation: Layer.Layer<WorkQueue, unknown>) =>
  layer(implementation, { excludeTestServices: true })(`WorkQueue contract (${name})`, (it) => {
    const test = (
      title: string,
      body: (logs: Array<string>) => Effect.Effect<void, unknown, WorkQueue | Scope.Scope>
    ) =>
      it.scoped(
        title,
        () => {
          const logs: Array<string> = []
          return body(logs).pipe(Effect.provide(captureLogs(logs)))
        },
        { concurrent: true }
      )

    test("an enqueued job is handled once, with its payload intact", () =>
      Effect.gen(function* () {
        const work = yield* WorkQueue
        const queue = fresh("once")
        const { deliveries, handler, count } = recorder()
        yield* work.consume(queue, handler, options)
        const payload = JSON.stringify({ to: "ünïcödé@example.com", text: "line\nbreak" })
        const id = yield* work.enqueue(queue, payload)

        yield* eventually(count, (n) => n === 1)
        yield* Effect.sleep(Duration.times(retryAfter, 3))
        expect(deliveries.map(({ at: _, ...job }) => job)).toEqual([{ id, payload, attempt: 1 }])
        expect(yield* work.deadLetters(queue)).toEqual([])
      }))

    test("a failed job is delivered again after retryAfter and succeeds on the second attempt", () =>
      Effect.gen(function* () {
        const work = yield* WorkQueue
        const queue = fresh("retry")
        const { deliveries, handler, count } = recorder((job) =>
          job.attempt === 1 ? Effect.fail("smtp down") : Effect.void
        )
        yield* work.consume(queue, handler, options)
        const id = yield* work.enqueue(queue, "job")

        yield* eventually(count, (n) => n === 2)
        yield* Effect.sleep(Duration.times(retryAfter, 3))
        expect(deliveries.map((d) => [d.id, d.attempt])).toEqual([
          [id, 1],
          [id, 2]
        ])
        expect(deliveries[1]!.at - deliveries[0]!.at).toBeGreaterThanOrEqual(observedRetryGap)
        expect(yield* work.deadLetters(queue)).toEqual([])
      }))

    test("a job that always fails (error or defect) ends in the dead letters after maxAttempts, once", (logs) =>
      Effect.gen(function* () {
        const work = yield* WorkQueue
        const queue = fresh("poison")
        const { deliveries, handler, count } = recorder((job) =>
          job.attempt === 2 ? Effect.die(new Error("bug")) : Effect.fail("rejected")
        )
        yield* work.consume(queue, handler, options)
        const payload = '{"to":"someone@example.com","subject":"Reset"}'
        const id = yield* work.enqueue(queue, payload)

        const dead = yield* eventually(work.deadLetters(queue).pipe(Effect.orDie), (letters) => letters.length > 0)
        expect(dead).toEqual([{ id, payload, attempts: 3 }])
        yield* Effect.sleep(Duration.times(retryAfter, 3))
        expect(deliveries.map((d) => d.attempt)).toEqual([1, 2, 3])
        expect(yield* count).toBe(3)
        expect(yield* work.deadLetters(queue)).toEqual([{ id, payload, attempts: 3 }])
        // The operator learns which job died and after how many attempts, never what it held.
        expect(
          logs.some((line) => line.includes("dead letters") && line.includes(id) && line.includes('"attempts":3'))
        ).toBe(true)
        expect(logs.filter((line) => line.includes("someone@example.com"))).toEqual([])
      }))

    test("a job taken by a worker that stops before acknowledging goes to another worker after retryAfter", () =>
      Effect.gen(function* () {
        const work = yield* WorkQueue
        const queue = fresh("crash")
        const first = recorder(() => Effect.never)
        const scope = yield* Scope.make()
        yield* work.consume(queue, first.handler, { ...options, consumer: "doomed" }).pipe(Scope.extend(scope))
        const id = yield* work.enqueue(queue, "survives")
        yield* eventually(first.count, (n) => n === 1)
        yield* Scope.close(scope, Exit.void)

        const second = recorder()
        yield* work.consume(queue, second.handler, { ...options, consumer: "rescuer" })
        yield* eventually(second.count, (n) => n === 1)
        const redelivery = second.deliveries[0]!
        expect([redelivery.id, redelivery.payload, redelivery.attempt]).toEqual([id, "survives", 2])
        expect(redelivery.at - first.deliveries[0]!.at).toBeGreaterThanOrEqual(observedRetryGap)
        yield* Effect.sleep(Duration.times(retryAfter, 3))
        expect(yield* second.count).toBe(1)
      }))

    test("a job whose worker dies in every allowed attempt ends in the dead letters without another run", () =>
      Effect.gen(function* () {
        const work = yield* WorkQueue
        const queue = fresh("crashes")
        const crashing = recorder(() => Effect.never)
        const scope = yield* Scope.make()
        yield* work.consume(queue, crashing.handler, { ...options, maxAttempts: 1 }).pipe(Scope.extend(scope))
        const id = yield* work.enqueue(queue, "kills its worker")
        yield* eventually(crashing.count, (n) => n === 1)
        yield* Scope.close(scope, Exit.void)

        const next = recorder()
        yield* work.consume(queue, next.handler, { ...options, maxAttempts: 1 })
        const dead = yield* eventually(work.deadLetters(queue).pipe(Effect.orDie), (letters) => letters.length > 0)
        expect(dead).toEqual([{ id, payload: "kills its worker", attempts: 1 }])
        expect(yield* next.count).toBe(0)
      }))

    test("jobs enqueued while no consumer runs are delivered, in order, when one starts", () =>
      Effect.gen(function* () {
        const work = yield* WorkQueue
        const queue = fresh("backlog")
        const ids = yield* Effect.forEach(["a", "b", "c"], (payload) => work.enqueue(queue, payload))
        const { deliveries, handler, count } = recorder()
        yield* work.consume(queue, handler, options)

        yield* eventually(count, (n) => n === 3)
        expect(deliveries.map((d) => [d.id, d.payload, d.attempt])).toEqual([
          [ids[0], "a", 1],
          [ids[1], "b", 1],
          [ids[2], "c", 1]
        ])
      }))

    test("two consumers share the jobs of a queue without handling any twice", () =>
      Effect.gen(function* () {
        const work = yield* WorkQueue
        const queue = fresh("shared")
        const slow = () => Effect.sleep("20 millis")
        const one = recorder(slow)
        const two = recorder(slow)
        yield* work.consume(queue, one.handler, { ...options, consumer: "one" })
        yield* work.consume(queue, two.handler, { ...options, consumer: "two" })
        yield* Effect.sleep("50 millis")
        const payloads = Array.from({ length: 20 }, (_, i) => `job ${i}`)
        yield* Effect.forEach(payloads, (payload) => work.enqueue(queue, payload))

        const total = Effect.zipWith(one.count, two.count, (a, b) => a + b)
        yield* eventually(total, (n) => n >= 20)
        yield* Effect.sleep(Duration.times(retryAfter, 2))
        const handled = [...one.deliveries, ...two.deliveries].map((d) => d.payload)
        expect(handled.sort()).toEqual([...payloads].sort())
        expect(one.deliveries.length).toBeGreaterThan(0)
        expect(two.deliveries.length).toBeGreaterThan(0)
      }))

    test("a handler that runs longer than retryAfter keeps its job", () =>
      Effect.gen(function* () {
        const work = yield* WorkQueue
        const queue = fresh("slow")
        let finished = false
        const one = recorder(() =>
          Effect.sleep(Duration.times(retryAfter, 3)).pipe(
            Effect.tap(() => {
              finished = true
            })
          )
        )
        const two = recorder()
        yield* work.consume(queue, one.handler, { ...options, consumer: "one" })
        yield* work.enqueue(queue, "long job")
        yield* eventually(one.count, (n) => n === 1)
        yield* work.consume(queue, two.handler, { ...options, consumer: "two" })

        yield* eventually(
          Effect.sync(() => finished),
          (done) => done
        )
        yield* Effect.sleep(Duration.times(retryAfter, 2))
        expect(yield* one.count).toBe(1)
        expect(yield* two.count).toBe(0)
      }))

    test("with maxRetryAfter the wait doubles from one attempt to the next", () =>
      Effect.gen(function* () {
        const work = yield* WorkQueue
        const queue = fresh("backoff")
        const { deliveries, handler } = recorder(() => Effect.fail("down"))
        yield* work.consume(queue, handler, { maxAttempts: 4, retryAfter: "100 millis", maxRetryAfter: "400 millis" })
        const id = yield* work.enqueue(queue, "later")

        yield* eventually(work.deadLetters(queue).pipe(Effect.orDie), (letters) => letters.length > 0)
        const gaps = deliveries.slice(1).map((d, i) => d.at - deliveries[i]!.at)
        // Nominal gaps 100, 200, 400 ms; without doubling the last would be about 100 ms.
        expect(gaps[0]).toBeGreaterThanOrEqual(50)
        expect(gaps[1]).toBeGreaterThanOrEqual(100)
        expect(gaps[2]).toBeGreaterThanOrEqual(200)
        expect(yield* work.deadLetters(queue)).toEqual([{ id, payload: "later", attempts: 4 }])
      }))

    test("concurrency lets one consumer handle several jobs at the same time", () =>
      Effect.gen(function* () {
        const work = yield* WorkQueue
        const queue = fresh("parallel")
        const { deliveries, handler, count } = recorder(() => Effect.sleep("400 millis"))
        yield* work.consume(queue, handler, { ...options, retryAfter: "1 second", concurrency: 3 })
        yield* Effect.sleep("50 millis")
        yield* Effect.forEach(["a", "b", "c"], (payload) => work.enqueue(queue, payload))

        yield* eventually(count, (n) => n === 3)
        const starts = deliveries.map((d) => d.at)
        // One after the other they would start 400 ms apart.
        expect(Math.max(...starts) - Math.min(...starts)).toBeLessThan(400)
      }))

    test("an unknown queue has no dead letters", () =>
      Effect.gen(function* () {
        const work = yield* WorkQueue
        expect(yield* work.deadLetters(fresh("unknown"))).toEqual([])
      }))
  })
