import { Duration, Effect, Layer, type ParseResult, Queue, Schedule, Schema } from "effect"
import { Mailer, type MailMessage } from "../../services/Mailer.ts"
import { MailDeliveryError, MailTransport } from "../../services/MailTransport.ts"
import { type Job, WorkQueue } from "../../services/WorkQueue.ts"
import { MailTransportLive } from "./MailTransport.ts"

/** The WorkQueue every node's mail worker consumes. */
export const mailQueue = "mail"

const MailPayload = Schema.parseJson(Schema.Struct({ to: Schema.String, subject: Schema.String, text: Schema.String }))

export interface MailerOptions {
  /** Deliveries before a message goes to the dead letters of `mail`; 8 by default. */
  readonly maxAttempts?: number
  /** Wait before the first retry, doubling up to `maxRetryAfter`; 5 s and 5 min by default (≈ 10 min in all). */
  readonly retryAfter?: Duration.DurationInput
  readonly maxRetryAfter?: Duration.DurationInput
  /** Messages sent at the same time by this node; 2 by default. */
  readonly concurrency?: number
}

/** Safe to log: says why a delivery failed without the address or the text. */
const failure = (error: MailDeliveryError | ParseResult.ParseError) =>
  error instanceof MailDeliveryError
    ? { code: error.code ?? "unknown", responseCode: error.responseCode ?? "none" }
    : { code: "malformed message" }

const messageOf = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

/**
 * Mailer over the WorkQueue `mail`: `send` puts the message in an in-process buffer and returns; a
 * fiber moves it to the queue (retrying while the queue's store is down), and a worker delivers it
 * through the MailTransport, retried with backoff and parked in the dead letters when it keeps failing.
 */
export const makeMailerLayer = (options: MailerOptions = {}) =>
  Layer.scoped(
    Mailer,
    Effect.gen(function* () {
      const work = yield* WorkQueue
      const transport = yield* MailTransport

      const deliver = (job: Job) =>
        Schema.decode(MailPayload)(job.payload).pipe(
          Effect.flatMap(transport.deliver),
          Effect.tapError((error) =>
            Effect.logWarning("mail delivery failed").pipe(
              Effect.annotateLogs({ job: job.id, attempt: job.attempt, ...failure(error) })
            )
          )
        )
      yield* work.consume(mailQueue, deliver, {
        maxAttempts: options.maxAttempts ?? 8,
        retryAfter: options.retryAfter ?? Duration.seconds(5),
        maxRetryAfter: options.maxRetryAfter ?? Duration.minutes(5),
        concurrency: options.concurrency ?? 2
      })

      const buffer = yield* Queue.unbounded<string>()
      const retrying = Schedule.exponential("100 millis").pipe(Schedule.union(Schedule.spaced("5 seconds")))
      // Says once per message that it waits in memory; retries quietly until the store answers.
      const enqueue = (payload: string) => {
        const attempt = Effect.suspend(() => work.enqueue(mailQueue, payload))
        return attempt.pipe(
          Effect.tapError((error) =>
            Effect.logError("mail could not be queued; kept in memory and retried").pipe(
              Effect.annotateLogs({ operation: error.operation, reason: messageOf(error.cause) })
            )
          ),
          Effect.orElse(() => Effect.retry(attempt, retrying))
        )
      }
      const forward = Effect.gen(function* () {
        const payload = yield* Queue.take(buffer)
        yield* enqueue(payload).pipe(Effect.onInterrupt(() => Queue.offer(buffer, payload)))
      })
      // Runs after the forwarder stops: one more try for what is still buffered, then say what is lost.
      yield* Effect.addFinalizer(() =>
        Effect.gen(function* () {
          const left = yield* Queue.takeAll(buffer)
          let lost = left.length
          yield* Effect.forEach(left, (payload) =>
            work.enqueue(mailQueue, payload).pipe(
              Effect.tap(() => {
                lost -= 1
              }),
              Effect.ignore
            )
          ).pipe(Effect.timeout("3 seconds"), Effect.ignore)
          if (lost > 0) yield* Effect.logError(`${lost} mail message(s) could not be queued before shutdown`)
        })
      )
      yield* Effect.forkScoped(Effect.forever(forward))

      return Mailer.of({
        send: Effect.fn("Mailer.send")(function* (message: MailMessage) {
          const { to, subject, text } = message
          yield* Queue.offer(buffer, JSON.stringify({ to, subject, text }))
        })
      })
    })
  )

/** The Mailer of the server: MAIL_URL picks SMTP, otherwise `.eml` files under DATA_DIR/mail. */
export const MailerLive = makeMailerLayer().pipe(Layer.provide(MailTransportLive))
