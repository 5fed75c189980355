import { Effect, Layer, Option, Redacted, Schema } from "effect"
import { NotFound, ServiceUnavailable } from "../../rpc/Errors.ts"
import type { SignedIn } from "../../rpc/Security.ts"
import { KeyValueStore } from "../../services/KeyValueStore.ts"
import { PermissionStore } from "../../services/PermissionStore.ts"
import { Realtime, TICKET_TTL_SECONDS, type TicketClaims } from "../../services/Realtime.ts"
import { Revocations } from "../../services/Revocations.ts"
import { Sessions } from "../../services/Sessions.ts"
import { spannedGen } from "../../services/Span.ts"
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
/** Sessions whose absolute expiry is kept for issuing tickets from memory. */
const MAX_EXPIRIES = 100_000

const unavailable = (what: string) => (cause: unknown) =>
  Effect.logError(`realtime: cannot ${what}`, cause).pipe(
    Effect.zipRight(Effect.fail(new ServiceUnavailable({ message: "Live sessions are unavailable right now" })))
  )

export const make = Effect.gen(function* () {
  const sessions = yield* Sessions
  const revocations = yield* Revocations
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

  /** Sessions' absolute expiries (fixed when a session starts), as read for tickets issued before. */
  const expiries = new Map<string, number>()
  const rememberExpiry = (sessionId: string, at: number) => {
    expiries.set(sessionId, at)
    if (expiries.size > MAX_EXPIRIES) expiries.delete(expiries.keys().next().value!)
  }

  /** A fresh ticket for these claims, kept in the store for its lifetime. */
  const mint = (claims: TicketClaims) =>
    Effect.suspend(() => {
      const ticket = Secrets.newToken()
      return kv.set(ticketKey(ticket), encodeClaims(claims), `${TICKET_TTL_SECONDS} seconds`).pipe(
        Effect.catchAll(unavailable("store a ticket")),
        Effect.as({
          ticket,
          url: `${socketUrl}${socketUrl.includes("?") ? "&" : "?"}ticket=${ticket}`,
          expiresIn: TICKET_TTL_SECONDS
        })
      )
    })

  return Realtime.of({
    issueTicket: spannedGen("Realtime.issueTicket", function* (user: SignedIn, organizationId: string) {
      const answer = yield* store
        .check({ organizationId, userId: user.userId, permission: "org:read" })
        .pipe(Effect.catchTag("Conflict", Effect.die))
      if (!answer.member || answer.blocked === true) return yield* noSuchOrganization
      const expiresAt = yield* sessions
        .absoluteExpiry(user.sessionId)
        .pipe(Effect.catchAll(unavailable("read the session")))
      if (Option.isNone(expiresAt)) return yield* noSuchOrganization
      rememberExpiry(user.sessionId, expiresAt.value.getTime())
      return yield* mint({
        userId: user.userId,
        sessionId: user.sessionId,
        organizationId,
        sessionExpiresAt: expiresAt.value.getTime()
      })
    }),

    issueTicketNow: (user, organizationId) => {
      const sessionExpiresAt = expiries.get(user.sessionId)
      if (sessionExpiresAt === undefined) return undefined
      const answer = store.checkNow({
        organizationId,
        userId: user.userId,
        permission: "org:read",
        consistency: "cached"
      })
      if (answer === undefined || !answer.member || answer.blocked === true) return undefined
      return mint({ userId: user.userId, sessionId: user.sessionId, organizationId, sessionExpiresAt })
    },

    redeem: spannedGen("Realtime.redeem", function* (ticket: string) {
      if (!TICKET.test(ticket)) return Option.none()
      const claims = yield* kv
        .consume(ticketKey(ticket))
        .pipe(Effect.map(Option.flatMap(decodeClaims)), Effect.catchAll(unavailable("redeem a ticket")))
      if (Option.isNone(claims)) return claims
      // The session may have ended since the ticket was issued: its ticket ends with it.
      return (yield* revocations.isRevoked(claims.value.sessionId)) ? Option.none() : claims
    })
  })
})

export const RealtimeLive = Layer.effect(Realtime, make)
