/**
 * Revocations: making the access tokens of ended sessions stop working at once on every node.
 *
 * Owns: the revoked-session markers (key-value store, kept as long as an access token lives), the
 * in-process cache each node fills from the `sessions.revoked` events the outbox relay publishes
 * (after any outage of the stream), the lease under which that cache alone answers, whether the
 * feed is caught up (no failed read or gap since its last restore from Postgres), and the check
 * every authenticated request makes: while the feed is not caught up, the check asks Postgres,
 * never the store alone.
 * Does not own: ending sessions (Sessions, which records the event in the same transaction; callers
 * then call `revoke` so this node and the store know at once).
 */
import { Context, type Effect } from "effect"
import type { ServiceUnavailable } from "../rpc/Errors.ts"

export interface RevocationsShape {
  /**
   * After sessions were ended in Postgres: refuse their tokens on this node now, and return once
   * every other node refuses them too (each has applied the outbox event, or has stopped trusting
   * its feed alone). Waits a moment for the store and the stream, never longer: the marker is then
   * written in the background, and the event reaches every node once published.
   */
  readonly revoke: (sessionIds: ReadonlyArray<string>, reason: string) => Effect.Effect<void>
  /**
   * True when the session has ended. Asks Postgres while this node's feed is behind; fails (deny)
   * when Postgres must decide and cannot.
   */
  readonly isRevoked: (sessionId: string) => Effect.Effect<boolean, ServiceUnavailable>
  /** `isRevoked` when this node can tell from memory (its feed's lease), `undefined` when it must ask. */
  readonly revokedNow: (sessionId: string) => boolean | undefined
}

export class Revocations extends Context.Tag("app/Revocations")<Revocations, RevocationsShape>() {}
