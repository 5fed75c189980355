/**
 * The expiry scheduler: when an assignment's `expires_at` passes, it records `assignment.expired`
 * (bumping the organization's revision) within a second, so caches and live sessions drop the
 * grant then rather than at their next check. Checks never wait for it: an expired assignment
 * counts for nothing from its expiry instant on. "Passes" is by this node's clock (Effect's
 * `Clock`), the one checks decide with, so both agree and a TestClock drives it in tests.
 *
 * Every node runs one; `FOR UPDATE SKIP LOCKED` and the `expiry_recorded_at` marker make each
 * expiry recorded once, whichever node gets there first.
 */
import { Clock, Duration, Effect, Layer, Schema } from "effect"
import { event } from "../../services/Events.ts"
import { decodeRows } from "../Sql.ts"
import { Writer } from "./RbacSql.ts"

const BATCH = 200
/** The longest sleep between rounds, so an assignment created elsewhere is seen in time. */
const MAX_SLEEP = Duration.millis(500)
/** How long to wait when a due expiry is being recorded by another node. */
const RETRY_HELD = Duration.millis(100)

const Expired = Schema.Struct({
  id: Schema.String,
  organizationId: Schema.String,
  userId: Schema.String,
  roleId: Schema.String,
  scopeType: Schema.NullOr(Schema.String),
  scopeId: Schema.NullOr(Schema.String)
})
type Expired = typeof Expired.Type

const Next = Schema.Struct({ next: Schema.NullOr(Schema.DateFromSelf) })

export const ExpiryScheduler = Layer.scopedDiscard(
  Effect.gen(function* () {
    const { sql, outbox, audit } = yield* Writer

    /** Records one batch of expiries; returns how many. */
    const round = Effect.gen(function* () {
      const now = new Date(yield* Clock.currentTimeMillis)
      const rows = yield* sql`
        SELECT id, organization_id, user_id, role_id, scope_type, scope_id FROM assignments
        WHERE expires_at <= ${now} AND expiry_recorded_at IS NULL
        ORDER BY expires_at LIMIT ${BATCH}
        FOR UPDATE SKIP LOCKED`.pipe(decodeRows(Expired))
      const byOrganization = new Map<string, Array<Expired>>()
      for (const row of rows)
        byOrganization.set(row.organizationId, [...(byOrganization.get(row.organizationId) ?? []), row])
      for (const [organizationId, expired] of byOrganization) {
        const [first, ...rest] = expired.map((row) =>
          event("assignment.expired", {
            assignmentId: row.id,
            userId: row.userId,
            roleId: row.roleId,
            ...(row.scopeType !== null && row.scopeId !== null
              ? { scope: { type: row.scopeType, id: row.scopeId } }
              : {})
          })
        )
        const revision = yield* outbox.record(organizationId, [first!, ...rest])
        for (const row of expired) {
          yield* audit.record({
            action: "assignment.expired",
            organizationId,
            target: row.id,
            data: { userId: row.userId, roleId: row.roleId },
            revision
          })
        }
      }
      if (rows.length > 0) {
        yield* sql`UPDATE assignments SET expiry_recorded_at = now() WHERE id IN ${sql.in(rows.map((row) => row.id))}`
      }
      return rows.length
    }).pipe(
      outbox.transaction,
      // The organization was deleted meanwhile: its assignments went with it.
      Effect.catchTag("NotFound", () => Effect.succeed(0)),
      Effect.withSpan("ExpiryScheduler.round")
    )

    /** The time until the next pending expiry, capped. */
    const nextSleep = Effect.gen(function* () {
      const [row] = yield* sql`
        SELECT min(expires_at) AS next FROM assignments
        WHERE expires_at IS NOT NULL AND expiry_recorded_at IS NULL`.pipe(decodeRows(Next))
      if (row?.next == null) return MAX_SLEEP
      const wait = row.next.getTime() - (yield* Clock.currentTimeMillis)
      return Duration.min(MAX_SLEEP, Duration.millis(Math.max(0, wait)))
    })

    const loop = Effect.gen(function* () {
      while (true) {
        // Only a due expiry opens the claiming transaction; an idle node asks one indexed question.
        const wait = yield* nextSleep
        if (Duration.toMillis(wait) > 0) {
          yield* Effect.sleep(wait)
          continue
        }
        const done = yield* round
        // Nothing claimed although one is due: another node holds it; give it a moment.
        if (done === 0) yield* Effect.sleep(RETRY_HELD)
      }
    }).pipe(
      Effect.catchAllCause((cause) => Effect.logWarning("expiry: round failed; retrying", cause)),
      Effect.zipRight(Effect.sleep(Duration.seconds(1))),
      Effect.forever
    )

    yield* Effect.forkScoped(loop)
  })
)
