import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, HashMap, Layer, Logger, Schedule, type Scope } from "effect"
import { SMTPServer } from "smtp-server"
import { type MailerOptions, mailQueue, makeMailerLayer } from "../../src/layers/mail/MailerLive.ts"
import { MailTransportLive } from "../../src/layers/mail/MailTransport.ts"
import { WorkQueueMemory } from "../../src/layers/memory/WorkQueueMemory.ts"
import { WorkQueueRedis } from "../../src/layers/redis/WorkQueueRedis.ts"
import { Mailer } from "../../src/services/Mailer.ts"
import { WorkQueue, WorkQueueError } from "../../src/services/WorkQueue.ts"
import { TestRedisClient } from "../contract/TestRedisClient.ts"
import { freePort } from "../support/Servers.ts"

const retryAfter = Duration.millis(150)
const fast: MailerOptions = { retryAfter, maxRetryAfter: retryAfter, maxAttempts: 8 }
const concurrent = { concurrent: true }

const eventually = <A, E>(get: Effect.Effect<A, E>, done: (a: A) => boolean) =>
  get.pipe(
    Effect.filterOrFail(done),
    Effect.retry(Schedule.spaced("20 millis")),
    Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("condition not reached in time") })
  )

const captureLogs = (lines: Array<string>) =>
  Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ message, annotations }) => {
      lines.push(`${JSON.stringify(message)} ${JSON.stringify(Object.fromEntries(HashMap.toEntries(annotations)))}`)
    })
  )

interface Received {
  readonly to: ReadonlyArray<string>
  readonly raw: string
}

/**
 * A local SMTP server. `refuse(n)` gives the reply code that rejects the n-th message it is
 * offered (counting from 1), or undefined to accept it.
 */
const smtpServer = (port: number, refuse: (n: number) => number | undefined = () => undefined) => {
  const received: Array<Received> = []
  let offered = 0
  const start = Effect.acquireRelease(
    Effect.async<SMTPServer>((resume) => {
      const server = new SMTPServer({
        authOptional: true,
        disabledCommands: ["STARTTLS"],
        logger: false,
        closeTimeout: 200,
        onData(stream, session, callback) {
          const chunks: Array<Buffer> = []
          stream.on("data", (chunk: Buffer) => chunks.push(chunk))
          stream.on("end", () => {
            offered += 1
            const code = refuse(offered)
            if (code !== undefined) return callback(Object.assign(new Error("not now"), { responseCode: code }))
            received.push({
              to: session.envelope.rcptTo.map((address) => address.address),
              raw: Buffer.concat(chunks).toString("utf8")
            })
            callback()
          })
        }
      })
      server.on("error", (error) => resume(Effect.die(error)))
      server.listen(port, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) => Effect.async<void>((resume) => server.close(() => resume(Effect.void)))
  )
  return { start, received, offered: () => offered }
}

const config = (env: Record<string, string>) =>
  Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

interface Setup {
  readonly queue: Layer.Layer<WorkQueue, unknown>
  readonly env: Record<string, string>
  readonly options?: MailerOptions
  /** Receives every log line of the Mailer and its workers. */
  readonly logs?: Array<string>
}

/** Runs `body` with the Mailer as the server builds it (transport from the settings) over `queue`. */
const withMailer = <A, E>(setup: Setup, body: Effect.Effect<A, E, Mailer | WorkQueue | Scope.Scope>) =>
  body.pipe(
    Effect.scoped,
    Effect.provide(
      makeMailerLayer(setup.options ?? fast).pipe(
        Layer.provide(MailTransportLive.pipe(Layer.provide(config(setup.env)))),
        Layer.provideMerge(setup.queue)
      )
    ),
    Effect.provide(captureLogs(setup.logs ?? []))
  )

const received = (smtp: { readonly received: ReadonlyArray<Received> }) => Effect.sync(() => smtp.received.length)

const smtpUrl = (port: number) => ({ MAIL_URL: `smtp://127.0.0.1:${port}`, MAIL_FROM: "Support <support@example.com>" })
const message = { to: "alice@example.com", subject: "Reset your password", text: "Your reset token is tok-4f9a2c" }

const queues: ReadonlyArray<readonly [string, () => Layer.Layer<WorkQueue, unknown>]> = [
  ["memory", () => WorkQueueMemory],
  ["redis", () => WorkQueueRedis.pipe(Layer.provide(TestRedisClient))]
]

for (const [name, queue] of queues) {
  describe(`Mailer over SMTP (${name} queue)`, () => {
    it.scopedLive(
      "a sent message arrives with its recipient, sender, subject and body",
      () =>
        Effect.gen(function* () {
          const port = yield* Effect.promise(freePort)
          const smtp = smtpServer(port)
          yield* smtp.start
          yield* withMailer(
            { queue: queue(), env: smtpUrl(port) },
            Effect.gen(function* () {
              yield* (yield* Mailer).send(message)
              yield* eventually(received(smtp), (n) => n === 1)
            })
          )
          const [mail] = smtp.received
          expect(mail!.to).toEqual(["alice@example.com"])
          expect(mail!.raw).toMatch(/^Subject: Reset your password\r?$/m)
          expect(mail!.raw).toMatch(/^From: Support <support@example\.com>\r?$/m)
          expect(mail!.raw).toContain("Your reset token is tok-4f9a2c")
        }),
      concurrent
    )

    it.scopedLive(
      "while the SMTP server refuses, send returns at once and the message is delivered once when it accepts",
      () =>
        Effect.gen(function* () {
          const port = yield* Effect.promise(freePort)
          const smtp = smtpServer(port, (n) => (n <= 2 ? 451 : undefined))
          yield* smtp.start
          yield* withMailer(
            { queue: queue(), env: smtpUrl(port) },
            Effect.gen(function* () {
              const [elapsed] = yield* Effect.timed((yield* Mailer).send(message))
              expect(Duration.toMillis(elapsed)).toBeLessThan(50)
              yield* eventually(received(smtp), (n) => n === 1)
              yield* Effect.sleep(Duration.times(retryAfter, 4))
              expect(yield* (yield* WorkQueue).deadLetters(mailQueue)).toEqual([])
            })
          )
          expect(smtp.offered()).toBe(3)
          expect(smtp.received.map((mail) => mail.to)).toEqual([["alice@example.com"]])
        }),
      concurrent
    )

    it.scopedLive(
      "a message sent while the SMTP server is down is delivered once after it starts",
      () =>
        Effect.gen(function* () {
          const port = yield* Effect.promise(freePort)
          const smtp = smtpServer(port)
          yield* withMailer(
            { queue: queue(), env: smtpUrl(port) },
            Effect.gen(function* () {
              yield* (yield* Mailer).send(message)
              // At least two attempts meet a closed port.
              yield* Effect.sleep(Duration.times(retryAfter, 3))
              yield* smtp.start
              yield* eventually(received(smtp), (n) => n === 1)
              yield* Effect.sleep(Duration.times(retryAfter, 4))
            })
          )
          expect(smtp.offered()).toBe(1)
          expect(smtp.received[0]!.raw).toContain("Your reset token is tok-4f9a2c")
        }),
      concurrent
    )

    it.scopedLive(
      "a message the server always rejects ends in the dead letters, and the logs hold no address or text",
      () =>
        Effect.gen(function* () {
          const logs: Array<string> = []
          const port = yield* Effect.promise(freePort)
          const smtp = smtpServer(port, () => 550)
          yield* smtp.start
          const dead = yield* withMailer(
            { queue: queue(), env: smtpUrl(port), options: { ...fast, maxAttempts: 3 }, logs },
            Effect.gen(function* () {
              const work = yield* WorkQueue
              yield* (yield* Mailer).send(message)
              return yield* eventually(work.deadLetters(mailQueue), (letters) => letters.length > 0)
            })
          )
          expect(dead).toHaveLength(1)
          expect(dead[0]!.attempts).toBe(3)
          expect(JSON.parse(dead[0]!.payload)).toEqual(message)
          expect(smtp.offered()).toBe(3)
          expect(smtp.received).toEqual([])
          expect(
            logs.filter((line) => line.includes("mail delivery failed") && line.includes('"responseCode":550'))
          ).toHaveLength(3)
          expect(logs.filter((line) => line.includes("alice@") || line.includes("tok-4f9a2c"))).toEqual([])
        }),
      concurrent
    )
  })
}

describe("Mailer", () => {
  it.scopedLive(
    "without MAIL_URL writes an .eml file under DATA_DIR/mail and logs the recipient and subject, never the body",
    () =>
      Effect.gen(function* () {
        const logs: Array<string> = []
        const dataDir = yield* Effect.acquireRelease(
          Effect.promise(() => mkdtemp(join(tmpdir(), "mail-"))),
          (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
        )
        const directory = join(dataDir, "mail")
        yield* withMailer(
          { queue: WorkQueueMemory, env: { DATA_DIR: dataDir }, logs },
          Effect.gen(function* () {
            yield* (yield* Mailer).send(message)
            yield* eventually(
              Effect.sync(() => logs.filter((line) => line.includes("mail written to file")).length),
              (n) => n === 1
            )
          })
        )

        const files = yield* Effect.promise(() => readdir(directory))
        expect(files).toHaveLength(1)
        expect(files[0]).toMatch(/^\d{4}-\d\d-\d\dT[\d-]+Z-[0-9a-f]+\.eml$/)
        const file = join(directory, files[0]!)
        const eml = yield* Effect.promise(() => readFile(file, "utf8"))
        expect(eml).toMatch(/^To: alice@example\.com$/m)
        expect(eml).toMatch(/^Subject: Reset your password$/m)
        expect(eml).toContain("Your reset token is tok-4f9a2c")
        expect((yield* Effect.promise(() => stat(file))).mode & 0o777).toBe(0o600)

        const written = logs.filter((line) => line.includes("mail written to file"))
        expect(written[0]).toContain("alice@example.com")
        expect(written[0]).toContain("Reset your password")
        expect(logs.filter((line) => line.includes("tok-4f9a2c"))).toEqual([])
      }),
    concurrent
  )

  it.scopedLive(
    "a message is kept in memory and queued later when the queue's store is down",
    () =>
      Effect.gen(function* () {
        const logs: Array<string> = []
        const port = yield* Effect.promise(freePort)
        const smtp = smtpServer(port)
        yield* smtp.start
        // The store refuses the first three enqueues, as Redis does while it restarts.
        let refusals = 3
        const flaky = Layer.effect(
          WorkQueue,
          Effect.map(WorkQueue, (work) =>
            WorkQueue.of({
              ...work,
              enqueue: (queue, payload) =>
                Effect.suspend(() =>
                  refusals-- > 0
                    ? Effect.fail(new WorkQueueError({ operation: "enqueue", cause: new Error("connection refused") }))
                    : work.enqueue(queue, payload)
                )
            })
          )
        ).pipe(Layer.provide(WorkQueueMemory))
        yield* withMailer(
          { queue: flaky, env: smtpUrl(port), logs },
          Effect.gen(function* () {
            const [elapsed] = yield* Effect.timed((yield* Mailer).send(message))
            expect(Duration.toMillis(elapsed)).toBeLessThan(50)
            yield* eventually(received(smtp), (n) => n === 1)
            yield* Effect.sleep(Duration.times(retryAfter, 3))
          })
        )
        expect(smtp.received).toHaveLength(1)
        expect(logs.filter((line) => line.includes("could not be queued")).length).toBeGreaterThan(0)
        expect(logs.filter((line) => line.includes("alice@"))).toEqual([])
      }),
    concurrent
  )

  it.effect("a MAIL_URL that is not smtp:// or smtps:// stops the start without showing the URL", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Layer.build(MailTransportLive).pipe(
          Effect.scoped,
          Effect.provide(config({ MAIL_URL: "https://user:s3cret@mail.example.com" }))
        )
      )
      expect(String(error)).toContain("smtp://")
      expect(String(error)).not.toContain("s3cret")
    })
  )
})
