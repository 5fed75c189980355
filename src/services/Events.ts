/**
 * The events a permission change records (Outbox) and every node consumes: what changed, with the
 * ids a node needs to find the affected sessions through its indexes (by organization, role, user,
 * session) without scanning. Writers build them with `Events.*`; consumers decode `payload` with
 * `PermissionEvent` after matching `type`.
 *
 * Organization events carry the organization's revision (on the outbox row); user-level events
 * (`user.*`, `sessions.revoked`) have none and mean "reload this user's state from Postgres".
 * `sessions.revoked` is the one record of ended sessions (Sessions writes it with the change): each
 * node's Revocations caches the ids and its LiveRouter ends their live sessions.
 */
import { Schema } from "effect"
import type { NewEvent } from "./Outbox.ts"

const Scope = Schema.Struct({ type: Schema.String, id: Schema.String })

const AssignmentPayload = Schema.Struct({
  assignmentId: Schema.String,
  userId: Schema.String,
  roleId: Schema.String,
  scope: Schema.optional(Scope)
})

/** Every event type and the shape of its payload. */
export const EventPayloads = {
  "organization.created": Schema.Struct({ organizationId: Schema.String, ownerId: Schema.String }),
  "organization.deleted": Schema.Struct({ organizationId: Schema.String }),
  "organization.frozen": Schema.Struct({ organizationId: Schema.String }),
  "organization.unfrozen": Schema.Struct({ organizationId: Schema.String }),
  "member.added": Schema.Struct({ userId: Schema.String }),
  "member.removed": Schema.Struct({ userId: Schema.String }),
  "permission.created": Schema.Struct({ key: Schema.String }),
  "role.created": Schema.Struct({ roleId: Schema.String }),
  "role.updated": Schema.Struct({ roleId: Schema.String }),
  "role.deleted": Schema.Struct({ roleId: Schema.String }),
  "role.parents_changed": Schema.Struct({ roleId: Schema.String, parentIds: Schema.Array(Schema.String) }),
  "role.grants_changed": Schema.Struct({ roleId: Schema.String }),
  "assignment.added": AssignmentPayload,
  "assignment.removed": AssignmentPayload,
  "assignment.expired": AssignmentPayload,
  "user.disabled": Schema.Struct({ userId: Schema.String }),
  "user.enabled": Schema.Struct({ userId: Schema.String }),
  /** The profile `GET /v1/me` shows changed (email verified, MFA on or off): nodes forget their copy. */
  "user.profile_changed": Schema.Struct({ userId: Schema.String }),
  "sessions.revoked": Schema.Struct({
    userId: Schema.String,
    sessionIds: Schema.Array(Schema.String),
    reason: Schema.String
  })
} as const

export type EventType = keyof typeof EventPayloads
export type EventPayload<T extends EventType> = (typeof EventPayloads)[T]["Type"]

/** A recorded event with its payload typed by its `type`. */
export const event = <T extends EventType>(type: T, payload: EventPayload<T>): NewEvent => ({
  type,
  payload: payload as Readonly<Record<string, unknown>>
})

/** The payload of a consumed event, decoded by its type; `undefined` for a type this build does not know. */
export const decodePayload = (type: string, payload: unknown) =>
  type in EventPayloads
    ? Schema.decodeUnknownOption(EventPayloads[type as EventType] as Schema.Schema<unknown>)(payload)
    : undefined
