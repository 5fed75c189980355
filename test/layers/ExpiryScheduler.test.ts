import { randomUUID } from "node:crypto"
import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Clock, Duration, Effect, Layer, TestClock, TestServices } from "effect"
import { AuditLogLive } from "../../src/layers/AuditLogLive.ts"
import { OutboxLive } from "../../src/layers/events/OutboxLive.ts"
import { ExpiryScheduler } from "../../src/layers/rbac/ExpiryScheduler.ts"
import { Outbox } from "../../src/services/Outbox.ts"
import { ClockAtStart, DatabaseTest } from "./RbacLayers.ts"

/** The scheduler alone with what it needs: nothing else sleeps on the TestClock here. */
const SchedulerTest = ExpiryScheduler.pipe(
  Layer.provideMerge(Layer.mergeAll(OutboxLive, AuditLogLive)),
  Layer.provideMerge(DatabaseTest),
  Layer.provideMerge(ClockAtStart)
)

/**
 * Waits, in real time (at most 10 s), until the scheduler has finished its round and sleeps on the
 * TestClock again: the only fiber that sleeps here.
 */
const asleep = Effect.gen(function* () {
  for (let waited = 0; waited < 1_000; waited++) {
    if ((yield* TestClock.sleeps()).length > 0) return
    yield* TestServices.provideLive(Effect.sleep("10 millis"))
  }
  return yield* Effect.dieMessage("the scheduler did not go back to sleep")
})

/** An organization whose only member holds one role until `expiresAt`. */
const expiringAssignment = (expiresAt: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const one = (rows: ReadonlyArray<{ readonly [key: string]: unknown }>) => String(rows[0]!.id)
    const org = one(
      yield* sql`INSERT INTO organizations (slug, name) VALUES (${`org-${randomUUID()}`}, 'T') RETURNING id::text AS id`
    )
    const user = one(
      yield* sql`INSERT INTO users (email, name) VALUES (${`${randomUUID()}@example.com`}, 'U') RETURNING id::text AS id`
    )
    yield* sql`INSERT INTO memberships (organization_id, user_id) VALUES (${org}, ${user})`
    const role = one(
      yield* sql`INSERT INTO roles (organization_id, name) VALUES (${org}, 'temp') RETURNING id::text AS id`
    )
    const assignment = one(
      yield* sql`
      INSERT INTO assignments (organization_id, user_id, role_id, expires_at)
      VALUES (${org}, ${user}, ${role}, ${new Date(expiresAt)}) RETURNING id::text AS id`
    )
    return { org, user, role, assignment }
  }).pipe(Effect.orDie)

const recorded = (organizationId: string) =>
  Effect.flatMap(Outbox, (outbox) => outbox.eventsSince(organizationId, "0")).pipe(
    Effect.map((events) => events.filter((event) => event.type === "assignment.expired"))
  )

describe("ExpiryScheduler (layer on Postgres, TestClock)", () => {
  it.layer(SchedulerTest, { timeout: "120 seconds" })((it) => {
    it.effect("records assignment.expired once the TestClock reaches the expiry, not a moment before, and once", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const now = yield* Clock.currentTimeMillis
        const expiresAt = now + 60_000
        const { org, user, role, assignment } = yield* expiringAssignment(expiresAt)
        yield* asleep

        // Rounds at one second, then a tenth of a second, before the expiry record nothing.
        yield* TestClock.adjust(Duration.millis(expiresAt - 1_000 - now))
        yield* asleep
        expect(yield* recorded(org)).toEqual([])
        yield* TestClock.adjust(Duration.millis(900))
        yield* asleep
        expect(yield* recorded(org)).toEqual([])
        const [pending] = yield* sql`SELECT expiry_recorded_at FROM assignments WHERE id = ${assignment}`
        expect(pending!.expiryRecordedAt).toBeNull()

        // At the expiry instant it is recorded, with the revision bump and the audit entry.
        yield* TestClock.adjust(Duration.millis(100))
        yield* asleep
        const events = yield* recorded(org)
        expect(events).toMatchObject([
          { revision: "1", payload: { assignmentId: assignment, userId: user, roleId: role } }
        ])
        const audit =
          yield* sql`SELECT action, target, revision::text AS revision FROM audit_log WHERE organization_id = ${org}`
        expect(audit).toEqual([{ action: "assignment.expired", target: assignment, revision: "1" }])

        // Later rounds leave it be.
        yield* TestClock.adjust(Duration.seconds(10))
        yield* asleep
        expect(yield* recorded(org)).toHaveLength(1)
      })
    )
  })
})
