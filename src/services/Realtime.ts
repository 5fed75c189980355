/**
 * Realtime: the tickets that open live sockets.
 *
 * Owns: issuing a single-use ticket (256 bits, only its SHA-256 kept, 30 s in the key-value store)
 * bound to the caller's session and an organization they belong to, and redeeming it once at the
 * WebSocket upgrade. Does not own: the sockets (LiveSocketServer) or what the sessions hold (actors).
 */
import { Context, type Effect, type Option } from "effect"
import type { NotFound, ServiceUnavailable } from "../rpc/Errors.ts"
import type { SignedIn } from "../rpc/Security.ts"

export const TICKET_TTL_SECONDS = 30

export interface IssuedTicket {
  readonly ticket: string
  readonly url: string
  readonly expiresIn: number
}

/** What a redeemed ticket proves. */
export interface TicketClaims {
  readonly userId: string
  readonly sessionId: string
  readonly organizationId: string
  /** When the session ends at the latest (its absolute expiry), in ms since the epoch. */
  readonly sessionExpiresAt: number
}

export interface RealtimeShape {
  /** 404 unless the caller is a member of the organization (and it is not frozen for them). */
  readonly issueTicket: (
    user: SignedIn,
    organizationId: string
  ) => Effect.Effect<IssuedTicket, NotFound | ServiceUnavailable>
  /**
   * `issueTicket` for a session that had a ticket before on this node, its membership decided from
   * memory at the watermark (the socket's open checks it again in Postgres, S47): the store's write
   * left to do; undefined when memory cannot tell, or says no (`issueTicket` then answers).
   */
  readonly issueTicketNow: (
    user: SignedIn,
    organizationId: string
  ) => Effect.Effect<IssuedTicket, ServiceUnavailable> | undefined
  /** The ticket's claims, once; `None` for an unknown, expired or used ticket. */
  readonly redeem: (ticket: string) => Effect.Effect<Option.Option<TicketClaims>, ServiceUnavailable>
}

export class Realtime extends Context.Tag("app/Realtime")<Realtime, RealtimeShape>() {}
