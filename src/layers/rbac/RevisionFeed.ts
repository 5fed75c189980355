/**
 * This node's feed of permission events into the revision cache (RevisionCache.ts): it follows the
 * event stream from its end and hands the cache each organization's revisions, complete and in
 * order. A revision is complete once as many of its events arrived as the change recorded
 * (`revisionEvents`); one that is left incomplete (its next revision arrives first) is handed over
 * as unknown, and the cache catches that organization up from Postgres. Events without an
 * organization that name a user (disabled, enabled, sessions ended) make the cache load that user
 * again. A gap in the stream or a failed read marks every entry stale.
 */
import { Effect, Layer, Option, Schedule, Schema } from "effect"
import type { RecordedEvent } from "../../domain/PolicyHistory.ts"
import { EventStream } from "../../services/EventStream.ts"
import { type OutboxEvent, OutboxEventJson, PERMISSION_EVENTS_STREAM } from "../../services/Outbox.ts"
import { RevisionCache, type RevisionCacheShape } from "./RevisionCache.ts"

const decodeEntry = Schema.decodeUnknownOption(OutboxEventJson)

interface Pending {
  readonly revision: bigint
  readonly expected: number
  readonly ids: Set<string>
  readonly events: Array<RecordedEvent>
}

const userIdOf = (payload: Readonly<Record<string, unknown>>) =>
  typeof payload.userId === "string" ? payload.userId : undefined

/** Groups an organization's events by revision and hands each complete one to the cache. */
export const makeAssembler = (cache: RevisionCacheShape) => {
  const pending = new Map<string, Pending>()
  return (event: OutboxEvent) => {
    if (event.organizationId === null || event.revision === null) {
      // A profile change (email verified, MFA) moves nothing a permission depends on.
      const userId = event.type === "user.profile_changed" ? undefined : userIdOf(event.payload)
      if (userId !== undefined) cache.forgetUser(userId)
      return
    }
    const organizationId = event.organizationId
    const revision = BigInt(event.revision)
    let open = pending.get(organizationId)
    if (open !== undefined && open.revision !== revision) {
      if (revision < open.revision) return // a replay
      cache.applyRevision(organizationId, open.revision, undefined)
      pending.delete(organizationId)
      open = undefined
    }
    if (open === undefined) {
      open = { revision, expected: event.revisionEvents ?? Number.POSITIVE_INFINITY, ids: new Set(), events: [] }
      pending.set(organizationId, open)
    }
    if (open.ids.has(event.id)) return
    open.ids.add(event.id)
    open.events.push({ revision, type: event.type, userId: userIdOf(event.payload) })
    if (open.events.length >= open.expected) {
      pending.delete(organizationId)
      cache.applyRevision(organizationId, revision, open.events)
    }
  }
}

export const make = Effect.gen(function* () {
  const cache = yield* RevisionCache
  const events = yield* EventStream
  const assemble = makeAssembler(cache)

  const follow = Effect.gen(function* () {
    let cursor = yield* events.last(PERMISSION_EVENTS_STREAM)
    while (true) {
      const result = yield* events.read(PERMISSION_EVENTS_STREAM, cursor, { block: "5 seconds", count: 500 })
      for (const entry of result.entries) {
        Option.map(decodeEntry(entry.payload), assemble)
        cursor = entry.id
      }
      if (result.gap) cache.staleAll()
    }
  }).pipe(
    Effect.catchAllCause((cause) =>
      Effect.logWarning("permissions: cannot follow the event stream; reading Postgres until it is back", cause)
    ),
    Effect.zipRight(Effect.sync(() => cache.staleAll())),
    Effect.repeat(Schedule.spaced("1 second"))
  )
  yield* Effect.forkScoped(follow)
})

export const RevisionFeedLive = Layer.scopedDiscard(make)
