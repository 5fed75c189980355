/**
 * The live router: this node's one consumer of the permission events (session revocations
 * included), from its own cursor. Each event goes only to the actors it affects, found through
 * the registry's indexes:
 * - role grants, parents, deletion → sessions holding the role or a descendant of it: refresh;
 * - assignment added, removed, expired → that user's sessions in the organization: refresh;
 * - a new catalog key → the organization's sessions: refresh (a wildcard may now cover it);
 * - member removed, organization frozen or deleted, user disabled, sessions revoked → revoke.
 * Refreshes are idempotent and coalesce in the actor, so a replayed event changes nothing.
 *
 * Gaps: an organization event whose revision jumps past the last one seen is preceded by the
 * missing events read from the outbox in Postgres; when those are past retention, or the stream
 * itself lost entries (trimmed past the cursor, Redis restarted empty), or reading failed for a
 * while, every affected session is resynchronised from Postgres and the gap is logged.
 */
import { Effect, Layer, Option, Schedule, Schema } from "effect"
import type { RevokedReason } from "../rpc/LiveProtocol.ts"
import { EventStream } from "../services/EventStream.ts"
import { decodePayload } from "../services/Events.ts"
import { Outbox, type OutboxEvent, OutboxEventJson, PERMISSION_EVENTS_STREAM } from "../services/Outbox.ts"
import { Sessions } from "../services/Sessions.ts"
import { type Registry, SessionRegistry } from "./SessionRegistry.ts"

const decodeEntry = Schema.decodeUnknownOption(OutboxEventJson)

/** The reason a live session gives its client, from the reason its session was ended for. */
export const revokedReasonFor = (reason: string): RevokedReason => {
  switch (reason) {
    case "logout":
    case "logout_all":
      return "logout"
    case "password_reset":
    case "password_changed":
      return "password_changed"
    case "user_disabled":
      return "user_disabled"
    default:
      return "session_revoked"
  }
}

const str = (payload: unknown, key: string) => {
  const value = (payload as Record<string, unknown> | undefined)?.[key]
  return typeof value === "string" ? value : undefined
}

/** Routes one committed event to the sessions it affects. */
export const route = (registry: Registry, event: OutboxEvent) => {
  const payload = Option.getOrElse(decodePayload(event.type, event.payload) ?? Option.none(), () => event.payload)
  const org = event.organizationId
  const each = (handles: Iterable<{ refresh: () => void }>) => {
    for (const handle of handles) handle.refresh()
  }
  switch (event.type) {
    case "role.grants_changed":
    case "role.parents_changed":
    case "role.deleted":
    case "role.updated": {
      const roleId = str(payload, "roleId")
      if (roleId !== undefined) each(registry.byRole(roleId))
      return
    }
    case "assignment.added":
    case "assignment.removed":
    case "assignment.expired":
    case "member.added": {
      const userId = str(payload, "userId")
      if (userId !== undefined && org !== null) each(registry.byUserIn(userId, org))
      return
    }
    case "member.removed": {
      const userId = str(payload, "userId")
      if (userId !== undefined && org !== null) {
        for (const handle of registry.byUserIn(userId, org)) handle.revoke("member_removed")
      }
      return
    }
    case "permission.created":
      if (org !== null) each(registry.byOrganization(org))
      return
    case "organization.frozen":
    case "organization.deleted":
      if (org !== null) {
        const reason = event.type === "organization.frozen" ? "organization_frozen" : "organization_deleted"
        for (const handle of registry.byOrganization(org)) handle.revoke(reason)
      }
      return
    case "user.disabled": {
      const userId = str(payload, "userId")
      if (userId !== undefined) for (const handle of registry.byUser(userId)) handle.revoke("user_disabled")
      return
    }
    case "sessions.revoked": {
      const ids = (payload as { sessionIds?: unknown }).sessionIds
      const reason = revokedReasonFor(str(payload, "reason") ?? "")
      if (Array.isArray(ids)) {
        for (const id of ids)
          if (typeof id === "string") for (const handle of registry.bySession(id)) handle.revoke(reason)
      }
      return
    }
    case "organization.created":
    case "organization.unfrozen":
    case "user.enabled":
    case "user.profile_changed":
    case "role.created":
      return
    default:
      // An event this build does not know: be safe, recompute the organization's sessions.
      if (org !== null) each(registry.byOrganization(org))
  }
}

export const make = Effect.gen(function* () {
  const registry = yield* SessionRegistry
  const events = yield* EventStream
  const outbox = yield* Outbox
  const sessions = yield* Sessions
  /**
   * Per organization with sessions here, the last revision routed and the ids of its events:
   * replays are skipped, jumps are filled from Postgres.
   */
  const marks = new Map<string, { revision: bigint; ids: Set<string> }>()

  /** Recomputes every session and ends those whose session ended meanwhile: after any gap. */
  const resyncAll = (why: string) =>
    Effect.gen(function* () {
      const handles = registry.all()
      yield* Effect.logWarning(`live: ${why}; resynchronising ${handles.length} sessions from Postgres`)
      marks.clear()
      const sessionIds = [...new Set(handles.map((handle) => handle.sessionId))]
      if (sessionIds.length > 0) {
        for (const ended of yield* sessions.revokedAmong(sessionIds)) {
          for (const handle of registry.bySession(ended.id)) handle.revoke(revokedReasonFor(ended.reason))
        }
      }
      for (const handle of handles) handle.refresh()
    })

  const apply = (event: OutboxEvent) =>
    Effect.gen(function* () {
      if (event.organizationId === null || event.revision === null) return route(registry, event)
      const organizationId = event.organizationId
      const revision = BigInt(event.revision)
      const mark = marks.get(organizationId)
      if (mark !== undefined && revision < mark.revision) return // replayed
      if (mark !== undefined && revision === mark.revision) {
        // Another event of the same change, or a replay of one.
        if (mark.ids.has(event.id)) return
        mark.ids.add(event.id)
        return route(registry, event)
      }
      if (registry.byOrganization(organizationId).size === 0) {
        // Nobody here to update: a session opened later starts from Postgres anyway.
        marks.delete(organizationId)
        registry.noteRevision(organizationId, revision)
        return
      }
      if (mark !== undefined && revision > mark.revision + 1n) {
        const missing = yield* outbox.eventsSince(organizationId, mark.revision.toString())
        const first = missing[0]
        if (first === undefined || BigInt(first.revision ?? "0") !== mark.revision + 1n) {
          yield* Effect.logWarning(
            `live: events of organization ${organizationId} after revision ${mark.revision} are gone; resynchronising its sessions`
          )
          for (const handle of registry.byOrganization(organizationId)) handle.refresh()
        } else {
          yield* Effect.logInfo(
            `live: revision jump in organization ${organizationId}; read ${missing.length} events from Postgres`
          )
          for (const missed of missing) if (BigInt(missed.revision ?? "0") < revision) route(registry, missed)
        }
      }
      route(registry, event)
      marks.set(organizationId, { revision, ids: new Set([event.id]) })
      registry.noteRevision(organizationId, revision)
    })

  /** Follows a stream from its end; a gap or a failed read (events may be lost) resyncs. */
  const follow = (stream: string, onEntry: (payload: string) => Effect.Effect<void, unknown>) =>
    Effect.gen(function* () {
      let cursor = yield* events.last(stream)
      let failing = false
      while (true) {
        const result = yield* events.read(stream, cursor, { block: "5 seconds", count: 500 }).pipe(
          Effect.tapError((error) =>
            failing ? Effect.void : Effect.logWarning(`live: cannot read ${stream}; retrying`, error)
          ),
          Effect.tapError(() => Effect.sync(() => (failing = true))),
          Effect.retry(Schedule.spaced("1 second"))
        )
        if (failing) {
          failing = false
          yield* resyncAll(`${stream} was unreachable`)
        }
        for (const entry of result.entries) {
          yield* onEntry(entry.payload).pipe(
            Effect.catchAllCause((cause) => Effect.logWarning("live: could not apply an event", cause))
          )
          cursor = entry.id
        }
        if (result.gap) {
          yield* resyncAll(`gap in ${stream}`)
          cursor = yield* events.last(stream).pipe(Effect.orElseSucceed(() => cursor))
        }
      }
    }).pipe(
      Effect.catchAllCause((cause) => Effect.logError(`live: following ${stream} stopped; restarting`, cause)),
      Effect.zipRight(Effect.sleep("1 second")),
      Effect.forever
    )

  yield* Effect.forkScoped(
    follow(PERMISSION_EVENTS_STREAM, (payload) =>
      Option.match(decodeEntry(payload), { onNone: () => Effect.void, onSome: apply })
    )
  )
})

export const LiveRouterLive = Layer.scopedDiscard(make)
