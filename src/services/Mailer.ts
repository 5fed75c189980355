/**
 * Mailer: hands a message over for delivery and returns at once.
 *
 * Owns: queueing, retrying while the mail server is down, and parking messages that keep failing
 * (dead letters). Does not own: what the messages say (the callers compose them), or templates.
 * `send` never fails and never waits for the mail server.
 */
import { Context, type Effect } from "effect"

export interface MailMessage {
  readonly to: string
  readonly subject: string
  readonly text: string
}

export interface MailerShape {
  readonly send: (message: MailMessage) => Effect.Effect<void>
}

export class Mailer extends Context.Tag("app/Mailer")<Mailer, MailerShape>() {}
