import { SqlClient } from "@effect/sql"
import { Effect, Layer, Option, Redacted, Schema } from "effect"
import { NotFound, ServiceUnavailable } from "../../rpc/Errors.ts"
import { KeyValueStore } from "../../services/KeyValueStore.ts"
import { PermissionStore } from "../../services/PermissionStore.ts"
import { Realtime, TICKET_TTL_SECONDS, type TicketClaims } from "../../services/Realtime.ts"
import * as Secrets from "../Secrets.ts"
import { Settings } from "../Settings.ts"

const Claims = Schema.parseJson(
  Schema.Struct({
    userId: Schema.String,
    sessionId: Schema.String,
    organizationId: Schema.String,
    sessionExpiresAt: Schema.Number
  })
)
const encodeClaims = Schema.encodeSync(Claims)
const decodeClaims = Schema.decodeUnknownOption(Claims)

const ticketKey = (ticket: string) => `ticket:${Secrets.sha256(ticket).toString("hex")}`
const TICKET = /^[A-Za-z0-9_-]{43}$/

const unavailable = (what: string) => (cause: unknown) =>
  Effect.logError(`realtime: cannot ${what}`, cause).pipe(
    Effect.zipRight(Effect.fail(new ServiceUnavailable({ message: "Live sessions are unavailable right now" })))
  )

export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const kv = yield* KeyValueStore
  const store = yield* PermissionStore
  const publicUrl = new URL(yield* Settings.publicUrl)
  const wsPort = yield* Settings.wsPort
  const configured = yield* Settings.publicWsUrl
  const socketUrl = Option.match(configured, {
    onSome: (url) => Redacted.value(url).replace(/\/+$/, ""),
    onNone: () => `${publicUrl.protocol === "https:" ? "wss" : "ws"}://${publicUrl.hostname}:${wsPort}/ws`
  })
  const noSuchOrganization = new NotFound({ message: "No such organization" })

  return Realtime.of({
    issueTicket: (user, organizationId) =>
      Effect.gen(function* () {
        const answer = yield* store
          .check({ organizationId, userId: user.userId, permission: "org:read" })
          .pipe(Effect.catchTag("Conflict", Effect.die))
        if (!answer.member || answer.blocked === true) return yield* noSuchOrganization
        const [session] = yield* sql<{ absoluteExpiresAt: Date }>`
          SELECT absolute_expires_at FROM sessions WHERE id = ${user.sessionId} AND revoked_at IS NULL`.pipe(
          Effect.catchAll(unavailable("read the session"))
        )
        if (session === undefined) return yield* noSuchOrganization
        const ticket = Secrets.newToken()
        const claims: TicketClaims = {
          userId: user.userId,
          sessionId: user.sessionId,
          organizationId,
          sessionExpiresAt: session.absoluteExpiresAt.getTime()
        }
        yield* kv
          .set(ticketKey(ticket), encodeClaims(claims), `${TICKET_TTL_SECONDS} seconds`)
          .pipe(Effect.catchAll(unavailable("store a ticket")))
        return {
          ticket,
          url: `${socketUrl}${socketUrl.includes("?") ? "&" : "?"}ticket=${ticket}`,
          expiresIn: TICKET_TTL_SECONDS
        }
      }),
    redeem: (ticket) =>
      TICKET.test(ticket)
        ? kv
            .consume(ticketKey(ticket))
            .pipe(Effect.map(Option.flatMap(decodeClaims)), Effect.catchAll(unavailable("redeem a ticket")))
        : Effect.succeed(Option.none())
  })
})

export const RealtimeLive = Layer.effect(Realtime, make)
