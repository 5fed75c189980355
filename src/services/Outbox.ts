/**
 * Outbox: the events of a change, written in the change's own transaction, and the organization
 * revision that orders them.
 *
 * Owns: bumping an organization's revision (the one place that does), the outbox rows, reading an
 * organization's committed events after a revision (for consumers that missed some), and waking
 * this node's relay after a commit. The events a committed change records are never lost: the relay
 * (layers/events/OutboxRelay.ts) publishes them to the event stream at least once, per organization in
 * revision order.
 * Does not own: what the events mean, routing them to sessions, or de-duplicating them (consumers
 * are idempotent by event id and (organization, revision)).
 */
import type { SqlError } from "@effect/sql/SqlError"
import { Context, type Effect, Schema } from "effect"
import type { NonEmptyReadonlyArray } from "effect/Array"
import type { NotFound } from "../rpc/Errors.ts"

/** The event stream the relay publishes to; every node reads it from its own cursor. */
export const PERMISSION_EVENTS_STREAM = "permission-events"

export interface NewEvent {
  readonly type: string
  readonly payload: Readonly<Record<string, unknown>>
}

/** A committed event, as `eventsSince` returns it and as each stream entry carries it (JSON). */
export const OutboxEvent = Schema.Struct({
  /** Unique, never reused; the key to de-duplicate a re-published event. */
  id: Schema.String,
  /** Null for user-level events (user disabled, sessions ended) that belong to no organization. */
  organizationId: Schema.NullOr(Schema.String),
  /** The organization's revision after the change, a string holding an integer; null with no organization. */
  revision: Schema.NullOr(Schema.String),
  type: Schema.String,
  payload: Schema.Record({ key: Schema.String, value: Schema.Unknown }),
  /** ISO 8601, UTC. */
  createdAt: Schema.String,
  /**
   * How many events the change of this revision recorded (all published, in id order): a consumer
   * that has them all knows the revision is complete. Absent on events without a revision.
   */
  revisionEvents: Schema.optional(Schema.Number)
})
export type OutboxEvent = typeof OutboxEvent.Type

/** Decodes and encodes a stream entry's payload. */
export const OutboxEventJson = Schema.parseJson(OutboxEvent)

export interface OutboxShape {
  /**
   * Bumps the organization's revision and records the events with it, in the caller's transaction:
   * it must run inside `sql.withTransaction` (or `transaction` below) and dies otherwise. The
   * revision bump locks the organization's row until commit, so changes to one organization commit
   * one after another in revision order, without gaps (a rolled-back change leaves no revision
   * behind). Returns the new revision. Fails with `NotFound` when the organization is gone (for
   * example deleted since the caller's guard looked), which rolls the caller's change back.
   */
  readonly record: (organizationId: string, events: NonEmptyReadonlyArray<NewEvent>) => Effect.Effect<string, NotFound>
  /**
   * Records events that belong to no organization (user disabled, sessions of a user ended), in the
   * caller's transaction, without a revision. They are published at least once but carry no order
   * among themselves: consumers treat them as "reload this user's state from Postgres".
   */
  readonly recordUnscoped: (events: NonEmptyReadonlyArray<NewEvent>) => Effect.Effect<void>
  /**
   * The organization's committed events with a revision above `revision`, oldest first (at most
   * `limit`, 1000 by default), published or not. Every revision has at least one event, so when the
   * first one returned is not `revision + 1` the events in between are past retention, and the
   * caller must rebuild from the current state in Postgres instead.
   */
  readonly eventsSince: (
    organizationId: string,
    revision: string,
    options?: { readonly limit?: number }
  ) => Effect.Effect<ReadonlyArray<OutboxEvent>>
  /** Runs `effect` in a transaction and wakes the relay once it has committed. SQL errors become defects. */
  readonly transaction: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, Exclude<E, SqlError>, R>
  /**
   * Tells this node's relay that events were committed, so they go out at once instead of at its
   * next poll. For callers that commit with `sql.withTransaction` themselves: call it after commit.
   */
  readonly wake: Effect.Effect<void>
}

export class Outbox extends Context.Tag("app/Outbox")<Outbox, OutboxShape>() {}
