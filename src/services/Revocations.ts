/**
 * Revocations: ending sessions so that their access tokens stop working at once on every node.
 *
 * Owns: the revoked-session markers (key-value store, kept as long as an access token lives), the
 * in-process cache fed by the event stream, and the check every authenticated request makes.
 * Does not own: the sessions table (Postgres is the truth; callers mark sessions there first).
 */
import { Context, type Effect } from "effect"
import type { ServiceUnavailable } from "../rpc/Errors.ts"

export interface RevocationsShape {
  readonly revoke: (sessionIds: ReadonlyArray<string>, reason: string) => Effect.Effect<void>
  /** True when the session has ended; fails (deny) when neither the store nor Postgres can tell. */
  readonly isRevoked: (sessionId: string) => Effect.Effect<boolean, ServiceUnavailable>
}

export class Revocations extends Context.Tag("app/Revocations")<Revocations, RevocationsShape>() {}
