/**
 * WorkQueue: durable background jobs, each handled by one worker of the queue's consumer group.
 *
 * Owns: keeping a job until a handler succeeds (at-least-once), redelivering it when the handler
 * failed or its worker died before acknowledging (after `retryAfter`, doubling up to
 * `maxRetryAfter`), and parking it in the queue's dead letters after `maxAttempts` deliveries.
 * Does not own: what a payload means, or making handlers idempotent (a worker that dies after the
 * work and before the acknowledgement makes the job run again).
 */
import { Context, Data, Duration, type Effect, type Scope } from "effect"

export interface Job {
  readonly id: string
  readonly payload: string
  /** 1 on the first delivery, 2 on the first redelivery, … */
  readonly attempt: number
}

export interface DeadLetter {
  /** The id `enqueue` returned. */
  readonly id: string
  readonly payload: string
  readonly attempts: number
}

export interface ConsumeOptions {
  /** Deliveries before the job goes to the dead letters. */
  readonly maxAttempts: number
  /** How long a delivered, unacknowledged job waits before it is delivered again. */
  readonly retryAfter: Duration.DurationInput
  /** The wait doubles with each delivery up to this; defaults to `retryAfter` (no growth). */
  readonly maxRetryAfter?: Duration.DurationInput
  /** Name of this worker in the group; unique per process by default. */
  readonly consumer?: string
  /** Jobs handled at the same time by this consumer; 1 by default. */
  readonly concurrency?: number
}

export class WorkQueueError extends Data.TaggedError("WorkQueueError")<{
  readonly operation: string
  readonly cause: unknown
}> {}

export interface WorkQueueShape {
  /** Stores the job; it is delivered to a consumer of the queue, now or once one runs. */
  readonly enqueue: (queue: string, payload: string) => Effect.Effect<string, WorkQueueError>
  /**
   * Starts workers that run until the scope closes. A job is acknowledged when its handler
   * succeeds; a failure or defect leaves it for redelivery. Storage errors are logged and retried.
   */
  readonly consume: (
    queue: string,
    handler: (job: Job) => Effect.Effect<void, unknown>,
    options: ConsumeOptions
  ) => Effect.Effect<void, never, Scope.Scope>
  /** The jobs that failed `maxAttempts` times, oldest first (at most `limit`, 100 by default). */
  readonly deadLetters: (
    queue: string,
    options?: { readonly limit?: number }
  ) => Effect.Effect<ReadonlyArray<DeadLetter>, WorkQueueError>
}

export class WorkQueue extends Context.Tag("app/WorkQueue")<WorkQueue, WorkQueueShape>() {}

/** How long a job that has been delivered `deliveries` times waits before the next delivery. */
export const retryDelay = (options: ConsumeOptions, deliveries: number): Duration.Duration => {
  const base = Duration.toMillis(options.retryAfter)
  const max = Math.max(base, Duration.toMillis(options.maxRetryAfter ?? options.retryAfter))
  return Duration.millis(Math.min(max, base * 2 ** Math.max(0, deliveries - 1)))
}
