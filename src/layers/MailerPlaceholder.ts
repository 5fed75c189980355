// Placeholder until the queued mailer lands.
import { Effect, Layer } from "effect"
import { Mailer } from "../services/Mailer.ts"

export const MailerLive = Layer.succeed(Mailer, {
  send: (message) => Effect.logInfo(`mail to ${message.to}: ${message.subject}`)
})
