import { Clock, Deferred, Duration, Effect, Exit, Layer } from "effect"
import { type ConsumeOptions, type DeadLetter, type Job, retryDelay, WorkQueue } from "../../services/WorkQueue.ts"
import { jobSpan } from "../../services/Span.ts"
import { appendTo, emptyLog, type MemoryLog } from "./MemoryLog.ts"

interface Pending {
  readonly id: string
  readonly payload: string
  deliveries: number
  deliveredAt: number
}

interface MemoryQueue extends MemoryLog {
  readonly waiting: Array<{ readonly id: string; readonly payload: string }>
  /** Delivered and not acknowledged, in delivery order. */
  readonly pending: Map<string, Pending>
  readonly dead: Array<DeadLetter>
}

const deadLetterLimit = 10_000

/**
 * In-process work queue for the embedded single-node mode and as a test fake: the same delivery,
 * redelivery and dead-letter rules as the Redis one, on the Effect clock. Jobs live as long as the process.
 */
export const make = Effect.sync(() => {
  const queues = new Map<string, MemoryQueue>()

  const queueFor = (name: string) => {
    let queue = queues.get(name)
    if (queue === undefined) {
      queue = { ...emptyLog(), waiting: [], pending: new Map(), dead: [] }
      queues.set(name, queue)
    }
    return queue
  }

  const bury = (name: string, queue: MemoryQueue, job: Pending, attempts: number) =>
    Effect.suspend(() => {
      queue.pending.delete(job.id)
      queue.dead.push({ id: job.id, payload: job.payload, attempts })
      if (queue.dead.length > deadLetterLimit) queue.dead.shift()
      return Effect.logWarning("job moved to dead letters").pipe(
        Effect.annotateLogs({ queue: name, job: job.id, attempts })
      )
    })

  /** The next due redelivery, else the oldest waiting job; or how long to wait for one. */
  const take = (queue: MemoryQueue, options: ConsumeOptions, now: number) => {
    let wait = 1_000
    for (const job of queue.pending.values()) {
      const dueIn = job.deliveredAt + Duration.toMillis(retryDelay(options, job.deliveries)) - now
      if (dueIn <= 0) {
        job.deliveries += 1
        job.deliveredAt = now
        return { job, wait }
      }
      wait = Math.min(wait, dueIn)
    }
    const next = queue.waiting.shift()
    if (next === undefined) return { job: undefined, wait }
    const job: Pending = { ...next, deliveries: 1, deliveredAt: now }
    queue.pending.set(job.id, job)
    return { job, wait }
  }

  const worker = (name: string, handler: (job: Job) => Effect.Effect<void, unknown>, options: ConsumeOptions) => {
    const queue = queueFor(name)
    const heartbeat = (job: Pending) =>
      Effect.sleep(Duration.millis(Math.max(10, Duration.toMillis(options.retryAfter) / 3))).pipe(
        Effect.zipRight(Clock.currentTimeMillis),
        Effect.tap((now) => {
          job.deliveredAt = now
        }),
        Effect.forever
      )
    const run = (job: Pending) =>
      Effect.gen(function* () {
        // A worker died in the last allowed attempt.
        if (job.deliveries > options.maxAttempts) return yield* bury(name, queue, job, job.deliveries - 1)
        const attempt = job.deliveries
        const exit = yield* Effect.exit(
          Effect.raceFirst(handler({ id: job.id, payload: job.payload, attempt }), heartbeat(job))
        )
        if (Exit.isSuccess(exit)) return queue.pending.delete(job.id)
        if (Exit.isInterrupted(exit)) return
        if (attempt >= options.maxAttempts) return yield* bury(name, queue, job, attempt)
        yield* Effect.logWarning("job failed; it will be retried").pipe(
          Effect.annotateLogs({ queue: name, job: job.id, attempt })
        )
      })
    return Effect.gen(function* () {
      const enqueued = queue.appended
      const { job, wait } = take(queue, options, yield* Clock.currentTimeMillis)
      if (job !== undefined) return yield* run(job).pipe(jobSpan(name, { id: job.id, attempt: job.deliveries }))
      yield* Deferred.await(enqueued).pipe(Effect.timeout(Duration.millis(Math.max(1, wait))), Effect.ignore)
    }).pipe(Effect.forever)
  }

  return WorkQueue.of({
    enqueue: Effect.fn("WorkQueue.enqueue")(function* (name: string, payload: string) {
      const queue = queueFor(name)
      return yield* appendTo(queue, (id) => queue.waiting.push({ id, payload }))
    }),
    consume: Effect.fn("WorkQueue.consume")(function* (name, handler, options) {
      yield* Effect.forEach(
        Array.from({ length: Math.max(1, options.concurrency ?? 1) }),
        () => Effect.forkScoped(worker(name, handler, options)),
        { discard: true }
      )
    }),
    deadLetters: Effect.fn("WorkQueue.deadLetters")((name, options) =>
      Effect.sync(() => (queues.get(name)?.dead ?? []).slice(0, options?.limit ?? 100))
    )
  })
})

export const WorkQueueMemory = Layer.effect(WorkQueue, make)
