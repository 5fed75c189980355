/**
 * Sessions: the sign-in sessions (one refresh-token family per login) and their refresh tokens.
 *
 * Owns: the `sessions` and `refresh_tokens` tables, the only code that reads or writes them:
 * starting a session, rotating its refresh token (with reuse detection), its idle and absolute
 * expiry, listing a user's sessions, and ending sessions. Ending sessions records one
 * `sessions.revoked` event in the outbox in the same transaction, so every node hears of it
 * however the stream fares. Does not own: refusing the access tokens of ended sessions at once
 * (Revocations, told by the caller after commit), access tokens (AccessTokens), or the rules of
 * signing in (SignIn).
 */
import { Context, Data, type Effect, type Option } from "effect"

/** Where a request came from, as a session keeps it. */
export interface Device {
  readonly ip: string
  readonly userAgent: string | null
}

/** A live session, as its user sees it listed. */
export interface SessionRecord {
  readonly id: string
  readonly createdAt: Date
  readonly lastUsedAt: Date
  /** The earlier of the idle and the absolute expiry. */
  readonly expiresAt: Date
  readonly ip: string | null
  readonly userAgent: string | null
}

/** A session that was ended, and why (`revoked` when no reason was kept). */
export interface RevokedSession {
  readonly id: string
  readonly reason: string
}

/** What presenting a refresh token did. */
export type Rotation = Data.TaggedEnum<{
  /** The token was current: here is the next one; the old one is dead. */
  Rotated: { readonly sessionId: string; readonly userId: string; readonly refreshToken: string }
  /**
   * The token had been rotated already (a replay, RFC 9700 §4.14.2): the whole session is ended.
   * `ended` is false when it had ended before (nothing new to tell the other nodes).
   */
  Reused: { readonly sessionId: string; readonly userId: string; readonly ended: boolean }
  /** Unknown token, or its session ended or expired. */
  Refused: {}
}>
export const Rotation = Data.taggedEnum<Rotation>()

/** Postgres could not answer a read; the caller decides what that means (deny, retry). */
export class SessionStoreError extends Data.TaggedError("SessionStoreError")<{
  readonly operation: string
  readonly cause: unknown
}> {}

export interface SessionsShape {
  /**
   * Starts a session with its first refresh token, only while the user exists and is enabled
   * (a disable committing meanwhile leaves no session behind). `None` otherwise.
   */
  readonly start: (
    userId: string,
    device: Device
  ) => Effect.Effect<Option.Option<{ readonly sessionId: string; readonly refreshToken: string }>>
  /** Rotates a refresh token, touching the session (last use, device, idle expiry). */
  readonly rotate: (refreshToken: string, device: Device) => Effect.Effect<Rotation>
  /** The user's live sessions, most recently used first. */
  readonly list: (userId: string) => Effect.Effect<ReadonlyArray<SessionRecord>>

  /**
   * Ends one session of the user, recording `sessions.revoked`; false when it is not theirs or had
   * ended already.
   */
  readonly revoke: (userId: string, sessionId: string, reason: string) => Effect.Effect<boolean>
  /**
   * Ends every session of the user not ended yet (but `except`), recording `sessions.revoked`, in
   * the caller's transaction when there is one (so a change and the sessions it ends commit
   * together); returns the ids it ended.
   */
  readonly revokeAll: (
    userId: string,
    reason: string,
    options?: { readonly except?: string }
  ) => Effect.Effect<ReadonlyArray<string>>

  /** A session's absolute expiry while it has not ended; `None` for an ended or unknown session. */
  readonly absoluteExpiry: (sessionId: string) => Effect.Effect<Option.Option<Date>, SessionStoreError>
  /** True when the session was ended or does not exist. */
  readonly hasEnded: (sessionId: string) => Effect.Effect<boolean, SessionStoreError>
  /** The sessions among `sessionIds` that were ended. */
  readonly revokedAmong: (
    sessionIds: ReadonlyArray<string>
  ) => Effect.Effect<ReadonlyArray<RevokedSession>, SessionStoreError>
  /** The sessions ended within the last `seconds`. */
  readonly revokedWithin: (seconds: number) => Effect.Effect<ReadonlyArray<RevokedSession>, SessionStoreError>
}

export class Sessions extends Context.Tag("app/Sessions")<Sessions, SessionsShape>() {}
