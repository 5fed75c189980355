import { randomBytes } from "node:crypto"
import { hostname } from "node:os"
import { Cause, Duration, Effect, Exit, Layer, Option, Pool, type Scope } from "effect"
import type { ChainableCommander, Redis } from "ioredis"
import {
  type ConsumeOptions,
  type DeadLetter,
  type Job,
  retryDelay,
  WorkQueue,
  WorkQueueError
} from "../../services/WorkQueue.ts"
import { jobSpan } from "../../services/Span.ts"
import { RedisClient, type RedisError } from "./RedisClient.ts"

/** One consumer group per queue: every worker of the queue shares its jobs. */
const group = "workers"
const deadLetterLimit = 10_000
/** Pending entries looked at per XPENDING call when looking for a due redelivery. */
const scanCount = 10
/** Consumers without jobs and unseen for this long belonged to stopped processes. */
const consumerIdleLimit = Duration.toMillis(Duration.hours(1))

type Fields = ReadonlyArray<string>
type RawEntry = [id: string, fields: Fields | null]
type PendingRow = [id: string, consumer: string, idleMs: number, deliveries: number]

const field = (fields: Fields, name: string) => {
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) return fields[i + 1] ?? ""
  return ""
}

const message = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

const toError = (error: RedisError) => new WorkQueueError({ operation: error.operation, cause: error.cause })

/** Runs a MULTI/EXEC and fails if any of its commands failed. */
const exec = async (transaction: ChainableCommander) => {
  const replies = await transaction.exec()
  if (replies === null) throw new Error("transaction aborted")
  for (const [error] of replies) if (error) throw error
}

// Atomic, so a consumer cannot be handed a job between the check and the delete.
const pruneConsumers = `
local removed = 0
for _, info in ipairs(redis.call("XINFO", "CONSUMERS", KEYS[1], ARGV[1])) do
  local fields = {}
  for i = 1, #info, 2 do fields[info[i]] = info[i + 1] end
  if fields["pending"] == 0 and fields["idle"] > tonumber(ARGV[2]) then
    redis.call("XGROUP", "DELCONSUMER", KEYS[1], ARGV[1], fields["name"])
    removed = removed + 1
  end
end
return removed`

/**
 * Redis Streams: a job is a stream entry, workers share it through the consumer group `workers`.
 * New jobs come from XREADGROUP (blocking, on a dedicated connection); a job delivered and not
 * acknowledged (handler failed, worker died) is claimed again with XPENDING IDLE + XCLAIM once
 * its retry delay passed, and the delivery counter Redis keeps is its attempt number. Acknowledged
 * jobs are deleted (payloads may hold personal data); dead ones move to the stream `<queue>:dead`.
 */
export const make = Effect.gen(function* () {
  const redis = yield* RedisClient
  const use = <A>(operation: string, f: (client: Redis) => Promise<A>) =>
    redis.use(operation, f).pipe(Effect.mapError(toError))

  const consumer = (
    queue: string,
    handler: (job: Job) => Effect.Effect<void, unknown>,
    options: ConsumeOptions,
    name: string,
    connections: Pool.Pool<Redis, RedisError>
  ) => {
    const key = redis.key(queue)
    const deadKey = redis.key(`${queue}:dead`)
    const firstDelay = Duration.toMillis(retryDelay(options, 1))
    // Redeliveries are looked for at least this often while waiting for new jobs.
    const blockMs = Math.round(Math.min(2_000, Math.max(50, firstDelay)))
    const delayAfter = (deliveries: number) => Math.round(Duration.toMillis(retryDelay(options, deliveries)))

    const ensureGroup = use("createGroup", (c) => c.xgroup("CREATE", key, group, "0", "MKSTREAM")).pipe(
      Effect.catchIf(
        (error) => message(error.cause).startsWith("BUSYGROUP"),
        () => Effect.void
      ),
      Effect.zipRight(use("pruneConsumers", (c) => c.eval(pruneConsumers, 1, key, group, consumerIdleLimit)))
    )

    /** A pending job whose retry delay has passed, claimed for this consumer; and where to look next. */
    const claimDue = (cursor: string) =>
      Effect.gen(function* () {
        const rows = (yield* use("claim", (c) =>
          c.call("XPENDING", key, group, "IDLE", Math.round(firstDelay), cursor, "+", scanCount)
        )) as Array<PendingRow>
        const due = rows.find(([, , idle, deliveries]) => idle >= delayAfter(deliveries))
        if (due === undefined) {
          const next = rows.length < scanCount ? "-" : `(${rows[rows.length - 1]![0]}`
          return [Option.none<Job>(), next] as const
        }
        const [id, , , deliveries] = due
        // XCLAIM checks the idle time again: of two consumers racing for the job, one gets it.
        const claimed = (yield* use("claim", (c) =>
          c.call("XCLAIM", key, group, name, delayAfter(deliveries), id)
        )) as Array<RawEntry | null>
        const fields = claimed[0]?.[1]
        if (fields == null) return [Option.none<Job>(), cursor] as const
        return [Option.some<Job>({ id, payload: field(fields, "p"), attempt: deliveries + 1 }), cursor] as const
      })

    const readNew = (block: boolean) => {
      const args = ["GROUP", group, name, "COUNT", 1, ...(block ? ["BLOCK", blockMs] : []), "STREAMS", key, ">"]
      const toJob = (reply: unknown): Option.Option<Job> => {
        const entry = (reply as Array<[string, Array<RawEntry>]> | null)?.[0]?.[1][0]
        if (entry?.[1] == null) return Option.none()
        return Option.some({ id: entry[0], payload: field(entry[1], "p"), attempt: 1 })
      }
      if (!block) return use("read", (c) => c.call("XREADGROUP", ...args)).pipe(Effect.map(toJob))
      return Effect.scoped(
        Effect.gen(function* () {
          const connection = yield* Pool.get(connections).pipe(Effect.mapError(toError))
          // An interrupted blocking read leaves the connection blocked: cut it and drop it from the
          // pool. A job Redis handed out just before stays pending and is claimed again later.
          return yield* Effect.tryPromise({
            try: () => connection.call("XREADGROUP", ...args),
            catch: (cause) => new WorkQueueError({ operation: "read", cause })
          }).pipe(
            Effect.timeoutFail({
              duration: blockMs + 5_000,
              onTimeout: () => new WorkQueueError({ operation: "read", cause: new Error("blocking read timed out") })
            }),
            Effect.onExit((exit) =>
              Exit.isSuccess(exit)
                ? Effect.void
                : Effect.zipRight(
                    Effect.sync(() => connection.disconnect()),
                    Pool.invalidate(connections, connection)
                  )
            )
          )
        })
      ).pipe(Effect.map(toJob))
    }

    // Keeps a job's idle time low while its handler runs, so a slow handler is not redelivered.
    const heartbeat = (id: string) =>
      Effect.sleep(Duration.millis(Math.max(10, firstDelay / 3))).pipe(
        Effect.zipRight(Effect.ignore(use("heartbeat", (c) => c.call("XCLAIM", key, group, name, 0, id, "JUSTID")))),
        Effect.forever
      )

    const ack = (id: string) => use("ack", (c) => exec(c.multi().xack(key, group, id).xdel(key, id)))

    const bury = (job: Job, attempts: number) =>
      use("deadLetter", (c) =>
        exec(
          c
            .multi()
            .xadd(deadKey, "MAXLEN", "~", deadLetterLimit, "*", "id", job.id, "p", job.payload, "attempts", attempts)
            .xack(key, group, job.id)
            .xdel(key, job.id)
        )
      ).pipe(
        Effect.zipRight(Effect.logWarning("job moved to dead letters")),
        Effect.annotateLogs({ queue, job: job.id, attempts })
      )

    const run = (job: Job) =>
      Effect.gen(function* () {
        // The worker holding the last allowed attempt died.
        if (job.attempt > options.maxAttempts) return yield* bury(job, job.attempt - 1)
        const exit = yield* Effect.exit(
          Effect.raceFirst(
            Effect.suspend(() => handler(job)),
            heartbeat(job.id)
          )
        )
        if (Exit.isSuccess(exit)) return yield* ack(job.id)
        if (Exit.isInterrupted(exit)) return
        if (job.attempt >= options.maxAttempts) return yield* bury(job, job.attempt)
        yield* Effect.logWarning("job failed; it will be retried").pipe(
          Effect.annotateLogs({ queue, job: job.id, attempt: job.attempt })
        )
      })

    const step = (cursor: string) =>
      Effect.gen(function* () {
        const [claimed, next] = yield* claimDue(cursor)
        // Block for new jobs only once every pending job has been looked at.
        const job = Option.isSome(claimed) ? claimed : yield* readNew(next === "-")
        if (Option.isSome(job)) yield* run(job.value).pipe(jobSpan(queue, job.value))
        return next
      })

    return Effect.gen(function* () {
      let cursor = "-"
      let failing = false
      yield* Effect.ignore(ensureGroup)
      while (true) {
        const exit = yield* Effect.exit(step(cursor))
        if (Exit.isSuccess(exit)) {
          if (failing) yield* Effect.logInfo("work queue reachable again").pipe(Effect.annotateLogs({ queue }))
          failing = false
          cursor = exit.value
          continue
        }
        if (!failing) {
          const error = Cause.squash(exit.cause)
          const reason =
            error instanceof WorkQueueError ? `${error.operation}: ${message(error.cause)}` : message(error)
          yield* Effect.logWarning("work queue failed; retrying").pipe(Effect.annotateLogs({ queue, reason }))
        }
        failing = true
        cursor = "-"
        yield* Effect.sleep("1 second")
        yield* Effect.ignore(ensureGroup)
      }
    })
  }

  const consume = Effect.fn("WorkQueue.consume")(function* (
    queue: string,
    handler: (job: Job) => Effect.Effect<void, unknown>,
    options: ConsumeOptions
  ): Effect.fn.Return<void, never, Scope.Scope> {
    const concurrency = Math.max(1, options.concurrency ?? 1)
    const name = options.consumer ?? `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`
    const connections = yield* Pool.makeWithTTL({
      acquire: redis.dedicated,
      min: 0,
      max: concurrency,
      timeToLive: Duration.minutes(5)
    })
    for (let i = 0; i < concurrency; i++) {
      const worker = concurrency === 1 ? name : `${name}/${i}`
      yield* Effect.forkScoped(consumer(queue, handler, options, worker, connections))
    }
  })

  return WorkQueue.of({
    enqueue: Effect.fn("WorkQueue.enqueue")(function* (queue, payload) {
      yield* Effect.annotateCurrentSpan("queue", queue)
      const id = yield* use("enqueue", (c) => c.xadd(redis.key(queue), "*", "p", payload))
      if (id === null) {
        return yield* new WorkQueueError({ operation: "enqueue", cause: new Error("no id returned") })
      }
      return id
    }),
    consume,
    deadLetters: Effect.fn("WorkQueue.deadLetters")((queue, options) =>
      use("deadLetters", (c) => c.xrange(redis.key(`${queue}:dead`), "-", "+", "COUNT", options?.limit ?? 100)).pipe(
        Effect.map((entries) =>
          entries.map(
            ([, fields]): DeadLetter => ({
              id: field(fields, "id"),
              payload: field(fields, "p"),
              attempts: Number(field(fields, "attempts"))
            })
          )
        )
      )
    )
  })
})

export const WorkQueueRedis = Layer.effect(WorkQueue, make)
