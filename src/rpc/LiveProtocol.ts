/**
 * The live protocol: JSON text frames on the WebSocket, described once here and shared by the
 * server (src/actors) and the client (src/rpc/LiveClient.ts). Every frame has a `type`. The prose
 * version, with examples, is docs/live-protocol.md.
 *
 * Connect: `POST /v1/realtime/tickets {organizationId}` (signed in, a member) answers
 * `{ticket, url, expiresIn}`; open `url` (it carries `?ticket=…`) within `expiresIn` seconds,
 * optionally adding `&revision=R` (the last revision the client saw) to get a first snapshot at R or
 * later (at the current revision if the organization never reached R: the client replaces its set,
 * revision included). The ticket works once. The server then sends `hello` and keeps the set current with
 * `permissions` diffs until the session ends (`revoked`, then close).
 *
 * Revisions are strings holding integers (they outgrow JavaScript numbers); a session's revision
 * never goes backwards.
 */
import { Either, Schema } from "effect"

const Revision = Schema.String.pipe(Schema.pattern(/^\d+$/))
const Id = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(100))
const Text = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(200))

/** Keys by resource, `type/id` → keys. */
export const ScopedPermissions = Schema.Record({ key: Schema.String, value: Schema.Array(Schema.String) })

// --- client → server ---------------------------------------------------------------------------

/** May the session's user do `permission` (on `resource`)? Answered with `check.result` and the same `id`. */
export const Check = Schema.Struct({
  type: Schema.Literal("check"),
  id: Id,
  permission: Text,
  resource: Schema.optional(
    Schema.Struct({
      type: Text,
      id: Text,
      attributes: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
    })
  )
})

/** Answered with `awaited` once the session has applied at least `revision`, or `error` (`revision_not_reached`). */
export const Await = Schema.Struct({ type: Schema.Literal("await"), id: Id, revision: Revision })

export const Ping = Schema.Struct({ type: Schema.Literal("ping") })

export const ClientMessage = Schema.Union(Check, Await, Ping)
export type ClientMessage = typeof ClientMessage.Type

// --- server → client ---------------------------------------------------------------------------

/** The whole state: the first frame of every connection, and again after the client fell behind. */
export const Hello = Schema.Struct({
  type: Schema.Literal("hello"),
  sessionId: Schema.String,
  userId: Schema.String,
  organizationId: Schema.String,
  /** Names of the roles assigned to the user organization-wide, sorted. */
  roles: Schema.Array(Schema.String),
  /** Keys allowed organization-wide, sorted. Grants with conditions depend on the resource: ask with `check`. */
  permissions: Schema.Array(Schema.String),
  /** Keys allowed on one resource beyond `permissions` (a role assigned on that resource). */
  scoped: ScopedPermissions,
  /**
   * Keys of `permissions` denied on one resource (a deny in a role assigned on it). On a resource,
   * allowed = (permissions − scopedDenied[resource]) ∪ scoped[resource].
   */
  scopedDenied: Schema.optionalWith(ScopedPermissions, { default: () => ({}) }),
  revision: Revision
})

/** What changed since the last frame; sent only when something did. */
export const PermissionsChanged = Schema.Struct({
  type: Schema.Literal("permissions"),
  revision: Revision,
  added: Schema.Array(Schema.String),
  removed: Schema.Array(Schema.String),
  scopedAdded: Schema.optional(ScopedPermissions),
  scopedRemoved: Schema.optional(ScopedPermissions),
  scopedDeniedAdded: Schema.optional(ScopedPermissions),
  scopedDeniedRemoved: Schema.optional(ScopedPermissions),
  /** The role names (as in `hello`), present only when they changed: an assignment, an expiry, a rename. */
  roles: Schema.optional(Schema.Array(Schema.String))
})

/** The session ended; the server closes the socket with `CloseCode.revoked` right after. */
export const Revoked = Schema.Struct({
  type: Schema.Literal("revoked"),
  reason: Schema.Literal(
    "logout",
    "session_revoked",
    "session_expired",
    "password_changed",
    "user_disabled",
    "member_removed",
    "organization_frozen",
    "organization_deleted"
  )
})
export type RevokedReason = (typeof Revoked.Type)["reason"]

export const CheckResult = Schema.Struct({
  type: Schema.Literal("check.result"),
  id: Schema.String,
  allowed: Schema.Boolean,
  reason: Schema.String,
  revision: Revision
})

export const Awaited = Schema.Struct({ type: Schema.Literal("awaited"), id: Schema.String, revision: Revision })

export const Pong = Schema.Struct({ type: Schema.Literal("pong") })

/**
 * Something the client sent could not be handled. Codes: `invalid_message` (not JSON, not one of the
 * client messages, or binary), `rate_limited` (too many messages; the message was dropped),
 * `revision_not_reached` (an `await` for a revision the organization never reached), `unavailable`
 * (the server could not decide; treat as denied).
 */
export const ErrorMessage = Schema.Struct({
  type: Schema.Literal("error"),
  code: Schema.Literal("invalid_message", "rate_limited", "revision_not_reached", "unavailable"),
  message: Schema.String,
  id: Schema.optional(Schema.String)
})

export const ServerMessage = Schema.Union(Hello, PermissionsChanged, Revoked, CheckResult, Awaited, Pong, ErrorMessage)
export type ServerMessage = typeof ServerMessage.Type

/** Close codes the server uses; 4xxx codes are this protocol's own. */
export const CloseCode = {
  /** The server is shutting down; reconnect (to another node) with a fresh ticket. */
  goingAway: 1001,
  /** The session ended on the server's side unexpectedly (a defect, logged). Reconnect with backoff. */
  internalError: 1011,
  /** The session could not be loaded (a dependency is down). Reconnect with backoff. */
  tryAgainLater: 1013,
  /** A frame larger than `MAX_FRAME_BYTES` (beyond 4× that, the connection is cut without a code: 1006). */
  tooBig: 1009,
  /** The session ended (`revoked` was sent first with the reason); do not reconnect with this session. */
  revoked: 4001,
  /** The client did not read its messages: its send buffer stayed over the limit. Reconnect. */
  tooSlow: 4002,
  /** The client kept sending faster than the message rate limit. */
  flooding: 4003
} as const

/**
 * The limits the server sets on every live socket. The server reads them from here, and
 * docs/live-protocol.md states each one: test/rpc/LiveProtocolDoc.test.ts fails when the page and
 * these values disagree.
 */
export const LiveLimits = {
  /** The largest frame accepted; a bigger one closes with 1009 (beyond 4× this the connection is cut: 1006). */
  maxFrameBytes: 16 * 1024,
  /** Client messages per second, sustained; beyond it a message is dropped and answered `rate_limited`. */
  messagesPerSecond: 20,
  /** Client messages allowed at once above the sustained rate. */
  burst: 40,
  /** Dropped messages after which a flooding client is closed (4003). */
  floodClose: 200,
  /** Client messages queued for the session at most; beyond it they are answered `rate_limited`. */
  mailbox: 256,
  /** A socket that sends nothing (not even a protocol pong) for this long is closed. */
  idleTimeoutSeconds: 120,
  /** How long an `await` (and a `check` at a revision) waits for a revision not yet committed. */
  awaitTimeoutMs: 2_000,
  /** Above this many bytes waiting in a socket's send buffer no diff is sent; a fresh `hello` follows the drain. */
  softBufferBytes: 64 * 1024,
  /** Above this many buffered bytes the client is closed (4002). */
  hardBufferBytes: 1024 * 1024,
  /** A client behind (over the soft limit) for this long is closed (4002). */
  stuckMs: 30_000,
  /** At most one recomputation of a session per this interval; the first change is applied at once. */
  recomputeEveryMs: 100,
  /** Live sockets one user may hold on one node by default (`MAX_SOCKETS_PER_USER`); the next gets 429. */
  socketsPerUser: 20
} as const

/** The largest frame the server accepts; a bigger one closes the connection (1009). */
export const MAX_FRAME_BYTES = LiveLimits.maxFrameBytes

const refusal = <const Status extends number, const Code extends string>(
  status: Status,
  statusText: string,
  code: Code,
  message: string
) => ({ status, statusText, body: { code, message } })

/**
 * How the upgrade refuses, before any socket opens: the HTTP status and the JSON body. A browser
 * sees none of it (its `WebSocket` fires `error`, then `close` with 1006).
 */
export const UpgradeRefusal = {
  /** An `Origin` header not exactly on `ALLOWED_ORIGINS`. */
  origin: refusal(403, "Forbidden", "forbidden", "Origin not allowed"),
  /** A missing, malformed, expired or used ticket. */
  ticket: refusal(401, "Unauthorized", "invalid_ticket", "Missing, expired or used ticket"),
  /** The user holds `MAX_SOCKETS_PER_USER` sockets on this node already. */
  sockets: refusal(429, "Too Many Requests", "too_many_sockets", "Too many live sockets for this user"),
  /** The ticket could not be checked (its store is unreachable). */
  unavailable: refusal(503, "Service Unavailable", "unavailable", "Try again shortly"),
  /** Anything else that failed during the upgrade. */
  failed: refusal(500, "Internal Server Error", "internal_error", "Upgrade failed")
} as const

const decodeMessage = Schema.decodeUnknownEither(ClientMessage)
/** A client frame's message; `Left` for text that is not JSON or not a message (the same Schema). */
export const decodeClientMessage = (text: string): Either.Either<ClientMessage, unknown> => {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    return Either.left(error)
  }
  return decodeMessage(json)
}
export const decodeServerMessage = Schema.decodeUnknownEither(Schema.parseJson(ServerMessage))
export const encodeServerMessage = (message: ServerMessage) => JSON.stringify(message)
export const encodeClientMessage = (message: ClientMessage) => JSON.stringify(message)
