/**
 * The expiry scheduler: when an assignment's `expires_at` passes, it records `assignment.expired`
 * (bumping the organization's revision) within a second, so caches and live sessions drop the
 * grant then rather than at their next check. Checks never wait for it: an expired assignment
 * counts for nothing from its expiry instant on.
 *
 * Every node runs one; `FOR UPDATE SKIP LOCKED` and the `expiry_recorded_at` marker make each
 * expiry recorded once, whichever node gets there first.
 */
import { SqlClient } from "@effect/sql"
import { Duration, Effect, Layer } from "effect"
import { AuditLog } from "../../services/AuditLog.ts"
import { event } from "../../services/Events.ts"
import { Outbox } from "../../services/Outbox.ts"

const BATCH = 200
/** The longest sleep between rounds, so an assignment created elsewhere is seen in time. */
const MAX_SLEEP = Duration.millis(500)

interface Expired {
  readonly id: string
  readonly organizationId: string
  readonly userId: string
  readonly roleId: string
  readonly scopeType: string | null
  readonly scopeId: string | null
}

export const ExpiryScheduler = Layer.scopedDiscard(
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const outbox = yield* Outbox
    const audit = yield* AuditLog

    /** Records one batch of expiries; returns how many. */
    const round = Effect.gen(function* () {
      const rows = yield* sql<Expired>`
        SELECT id, organization_id, user_id, role_id, scope_type, scope_id FROM assignments
        WHERE expires_at <= now() AND expiry_recorded_at IS NULL
        ORDER BY expires_at LIMIT ${BATCH}
        FOR UPDATE SKIP LOCKED`
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
      Effect.catchTag("NotFound", () => Effect.succeed(0))
    )

    /** Milliseconds until the next pending expiry, capped. */
    const nextSleep = sql<{ wait: number | null }>`
      SELECT (extract(epoch FROM min(expires_at) - now()) * 1000)::float8 AS wait FROM assignments
      WHERE expires_at IS NOT NULL AND expiry_recorded_at IS NULL`.pipe(
      Effect.map(([row]) =>
        Duration.min(MAX_SLEEP, Duration.millis(Math.max(0, Math.ceil(Number(row?.wait ?? Number.POSITIVE_INFINITY)))))
      )
    )

    const loop = Effect.gen(function* () {
      while (true) {
        const done = yield* round
        if (done === BATCH) continue
        yield* Effect.sleep(yield* nextSleep)
      }
    }).pipe(
      Effect.catchAllCause((cause) => Effect.logWarning("expiry: round failed; retrying", cause)),
      Effect.zipRight(Effect.sleep(Duration.seconds(1))),
      Effect.forever
    )

    yield* Effect.forkScoped(loop)
  })
)
