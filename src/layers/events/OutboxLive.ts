import { SqlClient, SqlSchema } from "@effect/sql"
import { SqlError } from "@effect/sql/SqlError"
import { Context, Duration, Effect, Layer, Option, Queue, Schema } from "effect"
import { spannedGen } from "../../services/Span.ts"
import { NotFound } from "../../rpc/Errors.ts"
import { type NewEvent, Outbox, OutboxEvent } from "../../services/Outbox.ts"
import { decodeRows } from "../Sql.ts"

/**
 * This node's "events were committed" signal, from `Outbox` to the relay. A pending wake-up is
 * kept until the relay next waits, so one given while the relay is busy is not lost.
 */
export class OutboxWakeup extends Context.Tag("app/layers/OutboxWakeup")<
  OutboxWakeup,
  {
    readonly wake: Effect.Effect<void>
    /** Returns at a wake-up, or after `timeout`. */
    readonly wait: (timeout: Duration.DurationInput) => Effect.Effect<void>
  }
>() {}

const makeWakeup = Effect.map(Queue.sliding<void>(1), (signal) =>
  OutboxWakeup.of({
    wake: Queue.offer(signal, undefined).pipe(Effect.asVoid),
    wait: (timeout) => Queue.take(signal).pipe(Effect.timeout(Duration.decode(timeout)), Effect.ignore)
  })
)

/** An outbox row as the relay and `eventsSince` select it (aliases survive any name transform). */
export const OutboxRow = Schema.Struct({
  id: Schema.String,
  organizationId: Schema.NullOr(Schema.String),
  revision: Schema.NullOr(Schema.String),
  type: Schema.String,
  /** As text: the client's name transform would otherwise rewrite the keys inside. */
  payload: Schema.String,
  createdAt: Schema.DateFromSelf,
  revisionEvents: Schema.NullOr(Schema.Number)
})
export type OutboxRow = typeof OutboxRow.Type

const revisionRows = decodeRows(Schema.Struct({ revision: Schema.String }))

const decodePayload = Schema.decodeUnknownSync(Schema.parseJson(OutboxEvent.fields.payload))

export const toEvent = (row: OutboxRow): OutboxEvent => ({
  id: row.id,
  organizationId: row.organizationId,
  revision: row.revision,
  type: row.type,
  payload: decodePayload(row.payload),
  createdAt: row.createdAt.toISOString(),
  ...(row.revision !== null && row.revisionEvents !== null ? { revisionEvents: row.revisionEvents } : {})
})

/** The select list of an outbox row as `OutboxRow` decodes it; `o` is the outbox's alias. */
export const outboxColumns = (sql: SqlClient.SqlClient) => sql.literal(`
  o.id::text AS id, o.organization_id::text AS "organizationId", o.revision::text AS revision,
  o.event_type AS type, o.payload::text AS payload, o.created_at AS "createdAt",
  (SELECT count(*)::int FROM outbox c
   WHERE c.organization_id = o.organization_id AND c.revision = o.revision) AS "revisionEvents"`)

export const make = (wakeup: OutboxWakeup["Type"]) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient

    const requireTransaction = Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (connection) =>
      Option.isSome(connection)
        ? Effect.void
        : Effect.dieMessage("Outbox: record must run inside the transaction of the change it describes")
    )

    // One statement for all the events, in the order given (the ordinality decides the ids). The
    // payload travels as JSON text so no name transform of the client touches its keys.
    const insert = (organizationId: string | null, revision: string | null, events: ReadonlyArray<NewEvent>) =>
      sql`
        INSERT INTO outbox (organization_id, revision, event_type, payload)
        SELECT ${organizationId}::uuid, ${revision}::bigint, e.value->>'type', e.value->'payload'
        FROM jsonb_array_elements(${JSON.stringify(events.map(({ type, payload }) => ({ type, payload })))}::jsonb)
          WITH ORDINALITY AS e(value, n)
        ORDER BY e.n`

    const findSince = SqlSchema.findAll({
      Request: Schema.Struct({ organizationId: Schema.String, revision: Schema.String, limit: Schema.Number }),
      Result: OutboxRow,
      execute: ({ organizationId, revision, limit }) => sql`
        SELECT ${outboxColumns(sql)}
        FROM outbox o
        WHERE o.organization_id = ${organizationId} AND o.revision > ${revision}::bigint
        ORDER BY o.revision, o.id
        LIMIT ${limit}`
    })

    return Outbox.of({
      record: Effect.fn("Outbox.record")(
        function* (organizationId, events) {
          yield* requireTransaction
          // The row lock taken here is held until the caller commits: the next change of this
          // organization waits, then reads this revision. Hence revision order = commit order, and
          // the outbox ids of one organization grow with its revisions (the relay relies on that).
          const [bumped] = yield* sql`
            UPDATE organizations SET revision = revision + 1, updated_at = now()
            WHERE id = ${organizationId} RETURNING revision::text AS revision`.pipe(revisionRows)
          if (bumped === undefined) return yield* new NotFound({ message: "Organization not found" })
          yield* insert(organizationId, bumped.revision, events)
          return bumped.revision
        },
        Effect.catchTag("SqlError", Effect.die)
      ),
      recordUnscoped: Effect.fn("Outbox.recordUnscoped")(
        function* (events) {
          yield* requireTransaction
          yield* insert(null, null, events)
        },
        Effect.catchTag("SqlError", Effect.die)
      ),
      eventsSince: spannedGen(
        "Outbox.eventsSince",
        function* (organizationId, revision, options) {
          const rows = yield* findSince({ organizationId, revision, limit: options?.limit ?? 1000 })
          return rows.map(toEvent)
        },
        Effect.orDie
      ),
      transaction: <A, E, R>(effect: Effect.Effect<A, E, R>) =>
        sql.withTransaction(effect).pipe(
          Effect.catchIf((error): error is SqlError => error instanceof SqlError, Effect.die),
          Effect.tap(() => wakeup.wake),
          Effect.withSpan("Outbox.transaction")
        ),
      wake: Effect.withSpan(wakeup.wake, "Outbox.wake")
    })
  })

/** `Outbox`, and the wake-up signal the relay (OutboxRelay.ts) waits on. */
export const OutboxLive = Layer.effectContext(
  Effect.gen(function* () {
    const wakeup = yield* makeWakeup
    const outbox = yield* make(wakeup)
    return Context.make(OutboxWakeup, wakeup).pipe(Context.add(Outbox, outbox))
  })
)
