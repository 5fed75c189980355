/**
 * MailTransport: hands one message to the outside world (an SMTP server, or `.eml` files in
 * development).
 *
 * Owns: one delivery attempt and why it failed. Does not own: queueing, retries or dead letters
 * (the Mailer's work queue does that around it).
 */
import { Context, Data, type Effect } from "effect"
import type { MailMessage } from "./Mailer.ts"

/** Why one delivery failed. `code` and `responseCode` are safe to log; `cause` may name the recipient. */
export class MailDeliveryError extends Data.TaggedError("MailDeliveryError")<{
  /** nodemailer's or the file system's code: ECONNECTION, EENVELOPE, EMESSAGE, ENOSPC, … */
  readonly code: string | undefined
  /** The SMTP reply code, when the server answered (550, 451, …). */
  readonly responseCode: number | undefined
  readonly cause: unknown
}> {}

export interface MailTransportShape {
  readonly deliver: (message: MailMessage) => Effect.Effect<void, MailDeliveryError>
}

export class MailTransport extends Context.Tag("app/MailTransport")<MailTransport, MailTransportShape>() {}
