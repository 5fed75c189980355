/**
 * One live session's state and the small operations on it that its actor (SessionActor.ts) is
 * built from: sending, closing, waking, the `hello` frame and adopting a snapshot.
 */
import type { Clock, Fiber, Queue } from "effect"
import * as EffectiveSet from "../domain/EffectiveSet.ts"
import { encodeServerMessage, type RevokedReason, type ServerMessage } from "../rpc/LiveProtocol.ts"
import type { PermissionStoreShape, SessionSnapshot } from "../services/PermissionStore.ts"
import type { TicketClaims } from "../services/Realtime.ts"
import type { Registry, SessionHandle } from "./SessionRegistry.ts"

/** The socket as the actor sees it; the transport (uWebSockets.js) implements it. */
export interface LiveSocket {
  /** False once the socket has closed: nothing may be sent then. */
  readonly isOpen: () => boolean
  readonly send: (text: string) => void
  readonly bufferedAmount: () => number
  readonly close: (code: number, reason: string) => void
}

export type Inbound =
  | { readonly _tag: "Frame"; readonly text: string }
  | { readonly _tag: "Binary" }
  | { readonly _tag: "Wake" }
  | { readonly _tag: "Drain" }

/** One session's state. Only its actor's fiber changes it, but for `signals`, which its handle sets. */
export interface Session {
  readonly claims: TicketClaims
  readonly socket: LiveSocket
  readonly mailbox: Queue.Queue<Inbound>
  readonly store: PermissionStoreShape
  readonly registry: Registry
  readonly clock: Clock.Clock
  readonly handle: SessionHandle
  /** The set the client holds, and the roles it depends on (the registry indexes it by them). */
  held: EffectiveSet.EffectiveSet
  roleIds: ReadonlyArray<string>
  /** Set by the handle; one `Wake` in the mailbox at a time carries them to the actor. */
  readonly signals: { refresh: boolean; wake: boolean; revoke: RevokedReason | undefined }
  /** When it last recomputed, and whether a wake-up for the end of the interval is on its way. */
  readonly pacing: { last: number; timer: boolean }
  /** While the client is behind: the timer that closes it if it stays so. */
  stuck: Fiber.RuntimeFiber<void> | undefined
  /** Client messages: the rate limiter's state, and how many were dropped. */
  readonly rate: { tat: number | undefined; dropped: number }
}

export const revokedBy: Record<SessionSnapshot["access"], RevokedReason | undefined> = {
  ok: undefined,
  not_member: "member_removed",
  frozen: "organization_frozen",
  disabled: "user_disabled",
  no_organization: "organization_deleted"
}

export const send = ({ socket }: Session, message: ServerMessage) =>
  socket.isOpen() ? socket.send(encodeServerMessage(message)) : undefined
export const close = ({ socket }: Session, code: number, reason: string) =>
  socket.isOpen() ? socket.close(code, reason) : undefined

export const wake = (session: Session) => {
  if (session.signals.wake) return
  session.signals.wake = true
  session.mailbox.unsafeOffer({ _tag: "Wake" })
}

export const hello = ({ claims, held }: Session): ServerMessage => {
  const { sessionId, userId, organizationId } = claims
  return { type: "hello", sessionId, userId, organizationId, ...EffectiveSet.toSnapshot(held) }
}

/** Takes `next` as the held set, re-indexing the session if the roles it depends on changed. */
export const adopt = (session: Session, next: SessionSnapshot, set = EffectiveSet.fromSnapshot(next)) => {
  if (next.roleIds.join("\n") !== session.roleIds.join("\n")) {
    session.registry.setRoles(session.handle, next.roleIds)
    session.roleIds = next.roleIds
  }
  session.held = set
}
