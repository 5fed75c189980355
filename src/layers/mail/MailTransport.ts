import { randomBytes } from "node:crypto"
import { mkdir, rename, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { Clock, Effect, Layer, Option, Redacted } from "effect"
import { createTransport } from "nodemailer"
import type { MailMessage } from "../../services/Mailer.ts"
import { MailDeliveryError, MailTransport } from "../../services/MailTransport.ts"
import { Settings } from "../Settings.ts"

const toDeliveryError = (cause: unknown) => {
  const { code, responseCode } = (typeof cause === "object" && cause !== null ? cause : {}) as Record<string, unknown>
  return new MailDeliveryError({
    code: typeof code === "string" ? code : undefined,
    responseCode: typeof responseCode === "number" ? responseCode : undefined,
    cause
  })
}

const fields = (from: string, { to, subject, text }: MailMessage) => ({ from, to, subject, text })

/** Delivers through an SMTP server; each message on a connection of its own, closed after it. */
export const makeSmtp = (url: Redacted.Redacted<string>, from: string) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      createTransport({
        url: Redacted.value(url),
        connectionTimeout: 5_000,
        greetingTimeout: 5_000,
        socketTimeout: 15_000
      })
    ),
    (transporter) => Effect.sync(() => transporter.close())
  ).pipe(
    Effect.map((transporter) =>
      MailTransport.of({
        deliver: Effect.fn("MailTransport.deliver", { attributes: { transport: "smtp" } })((message) =>
          Effect.tryPromise({ try: () => transporter.sendMail(fields(from, message)), catch: toDeliveryError }).pipe(
            Effect.asVoid
          )
        )
      })
    )
  )

/**
 * Development sink: writes each message as an RFC 822 `.eml` file (readable by the owner only: the
 * body holds tokens) and logs its recipient and subject, never its body.
 */
export const makeFile = (directory: string, from: string) =>
  Effect.sync(() => {
    const composer = createTransport({ streamTransport: true, buffer: true, newline: "unix" })
    return MailTransport.of({
      deliver: Effect.fn("MailTransport.deliver", { attributes: { transport: "file" } })(function* (message) {
        const compiled = yield* Effect.tryPromise({
          try: () => composer.sendMail(fields(from, message)),
          catch: toDeliveryError
        })
        const now = new Date(yield* Clock.currentTimeMillis).toISOString().replace(/[:.]/g, "-")
        const file = join(directory, `${now}-${randomBytes(4).toString("hex")}.eml`)
        yield* Effect.tryPromise({
          try: async () => {
            await mkdir(directory, { recursive: true, mode: 0o700 })
            // Written aside and renamed, so a reader never sees half a message.
            await writeFile(`${file}.tmp`, compiled.message as Buffer, { mode: 0o600 })
            await rename(`${file}.tmp`, file)
          },
          catch: toDeliveryError
        })
        yield* Effect.logInfo("mail written to file").pipe(
          Effect.annotateLogs({ to: message.to, subject: message.subject, file })
        )
      })
    })
  })

export const MailTransportSmtp = (url: Redacted.Redacted<string>, from: string) =>
  Layer.scoped(MailTransport, makeSmtp(url, from))

export const MailTransportFile = (directory: string, from: string) =>
  Layer.effect(MailTransport, makeFile(directory, from))

/** SMTP when MAIL_URL is set, otherwise `.eml` files under `DATA_DIR/mail`. */
export const MailTransportLive = Layer.scoped(
  MailTransport,
  Effect.gen(function* () {
    const url = yield* Settings.mailUrl
    const from = yield* Settings.mailFrom
    if (Option.isSome(url)) {
      yield* Effect.logInfo("mail: delivering through SMTP (MAIL_URL)")
      return yield* makeSmtp(url.value, from)
    }
    const directory = join(yield* Settings.dataDir, "mail")
    yield* Effect.logInfo(`mail: MAIL_URL is not set; messages are written to ${directory}`)
    return yield* makeFile(directory, from)
  })
)
