import { SqlClient } from "@effect/sql"
import { SqlError } from "@effect/sql/SqlError"
import { PgClient } from "@effect/sql-pg"
import { Cause, Duration, Effect, Exit, Layer, Option, Schema, Stream } from "effect"
import { EventStream, EventStreamError } from "../../services/EventStream.ts"
import { OutboxEventJson, PERMISSION_EVENTS_STREAM } from "../../services/Outbox.ts"
import { Settings } from "../Settings.ts"
import { decodeRows } from "../Sql.ts"
import { OutboxRow, OutboxWakeup, outboxColumns, toEvent } from "./OutboxLive.ts"

export interface RelayOptions {
  readonly maxLength: number
  readonly retention: Duration.DurationInput
  readonly pollInterval: Duration.DurationInput
  readonly stream?: string
  /** Rows claimed per transaction. */
  readonly batchSize?: number
  readonly pruneEvery?: Duration.DurationInput
  /** Wake on Postgres notifications of commits by any node (needs `PgClient`). */
  readonly listen?: boolean
}

const PUBLISH_TIMEOUT = Duration.seconds(5)
const ROUND_TIMEOUT = Duration.seconds(30)
const MAX_BACKOFF_MS = 2_000
const PRUNE_CHUNK = 10_000

const encode = Schema.encodeSync(OutboxEventJson)
const outboxRows = decodeRows(OutboxRow)
const countRows = decodeRows(Schema.Struct({ org: Schema.String, n: Schema.Number }))
const prunedRows = decodeRows(Schema.Struct({ n: Schema.Number }))

type Trouble = "event stream" | "database" | "relay"

const troubleOf = (cause: Cause.Cause<SqlError | EventStreamError>): Trouble =>
  Option.match(Cause.failureOption(cause), {
    onNone: () => "relay",
    onSome: (error) => (error._tag === "EventStreamError" ? "event stream" : "database")
  })

/**
 * Publishes committed outbox rows to the event stream, then marks them published, in one short
 * transaction per batch: rows are claimed with `FOR UPDATE SKIP LOCKED`, so relays on several nodes
 * share the work, and a failure anywhere (stream down, node killed) rolls the marks back and leaves
 * the rows for the next attempt. A crash after the XADD and before the commit publishes those rows
 * again: at least once, never lost; consumers de-duplicate by event id and revision.
 *
 * Order within an organization. `Outbox.record` bumps the revision under the organization's row
 * lock before it inserts, so the next change of that organization takes its revision (and calls
 * nextval for its ids) only after this one committed: per organization, commit order, revision
 * order and id order agree, and no committed row can appear later below a visible one. Across
 * organizations ids say nothing about commit order (a cursor on "last id" would skip a row that
 * commits late with a lower id); nothing here relies on that, every batch reads what is unpublished.
 * A batch taken `ORDER BY id` is therefore, per organization, a run of its oldest unlocked rows, and
 * publishing it in id order keeps revision order, unless another relay holds older rows of the
 * same organization right now (SKIP LOCKED skipped them): `heldElsewhere` finds those
 * organizations and their rows wait for the next batch, so the other relay's XADDs come first.
 * Events without an organization carry no order and are published as they come.
 */
export const make = (options: RelayOptions) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const events = yield* EventStream
    const wakeup = yield* OutboxWakeup
    const stream = options.stream ?? PERMISSION_EVENTS_STREAM
    const batchSize = options.batchSize ?? 500
    const retentionSeconds = Duration.toSeconds(options.retention)

    const claim = sql`
      SELECT ${outboxColumns(sql)}
      FROM outbox o WHERE o.published_at IS NULL
      ORDER BY o.id -- the bigint column, not the text alias
      LIMIT ${batchSize}
      FOR UPDATE OF o SKIP LOCKED`.pipe(outboxRows)

    /** Organizations with an unpublished row older than our newest that is not ours. */
    const heldElsewhere = (rows: ReadonlyArray<OutboxRow>) =>
      Effect.gen(function* () {
        const newest = new Map<string, string>()
        const mine = new Map<string, number>()
        for (const row of rows) {
          if (row.organizationId === null) continue
          newest.set(row.organizationId, row.id)
          mine.set(row.organizationId, (mine.get(row.organizationId) ?? 0) + 1)
        }
        if (newest.size === 0) return new Set<string>()
        const unpublished = yield* sql`
          SELECT o.organization_id::text AS org, count(*)::int AS n
          FROM outbox o
          JOIN unnest(${[...newest.keys()]}::uuid[], ${[...newest.values()]}::bigint[]) AS b(org, newest)
            ON o.organization_id = b.org
          WHERE o.published_at IS NULL AND o.id <= b.newest
          GROUP BY o.organization_id`.pipe(countRows)
        return new Set(unpublished.filter(({ org, n }) => n > (mine.get(org) ?? 0)).map(({ org }) => org))
      })

    const publish = (rows: ReadonlyArray<OutboxRow>) =>
      Effect.forEach(rows, (row) => events.append(stream, encode(toEvent(row)), { maxLength: options.maxLength }), {
        discard: true
      }).pipe(
        Effect.timeoutFail({
          duration: PUBLISH_TIMEOUT,
          onTimeout: () => new EventStreamError({ operation: "append", cause: "timed out" })
        }),
        Effect.zipRight(sql`UPDATE outbox SET published_at = now() WHERE id = ANY(${rows.map((r) => r.id)}::bigint[])`),
        Effect.withSpan("OutboxRelay.publish", { attributes: { events: rows.length } })
      )

    const claimRound = Effect.gen(function* () {
      const rows = yield* claim
      if (rows.length === 0) return { claimed: 0, published: 0 }
      const held = yield* heldElsewhere(rows)
      const ready =
        held.size === 0 ? rows : rows.filter((r) => r.organizationId === null || !held.has(r.organizationId))
      if (ready.length > 0) yield* publish(ready)
      return { claimed: rows.length, published: ready.length }
    }).pipe(sql.withTransaction)

    // An idle relay asks this one indexed question instead of opening a claiming transaction.
    const pending = sql`SELECT 1 AS one FROM outbox WHERE published_at IS NULL LIMIT 1`.pipe(
      Effect.map((rows) => rows.length > 0)
    )

    const round = Effect.gen(function* () {
      if (!(yield* pending)) return { claimed: 0, published: 0 }
      return yield* claimRound
    }).pipe(
      // A connection that stops answering (half-open TCP) must not stop the relay for good: give
      // up on the round, let its rollback finish in the background, and try again on another.
      Effect.disconnect,
      Effect.timeoutFail({
        duration: ROUND_TIMEOUT,
        onTimeout: () => new SqlError({ message: "outbox relay: a publishing round timed out", cause: "timeout" })
      })
    )

    const relay = Effect.gen(function* () {
      let trouble: Trouble | undefined
      let failures = 0
      while (true) {
        const exit = yield* Effect.exit(round)
        if (Exit.isFailure(exit)) {
          const now = troubleOf(exit.cause)
          if (now !== trouble) {
            yield* Effect.logWarning(
              `outbox relay: ${now} unavailable; committed events stay in Postgres and are published once it is back`,
              exit.cause
            )
            trouble = now
          }
          failures += 1
          yield* Effect.sleep(Duration.millis(Math.min(100 * 2 ** (failures - 1), MAX_BACKOFF_MS)))
          continue
        }
        failures = 0
        const { claimed, published } = exit.value
        // A round that published nothing proves the database only; ask the stream itself.
        if (
          trouble !== undefined &&
          (published > 0 || trouble !== "event stream" || Exit.isSuccess(yield* Effect.exit(events.ping)))
        ) {
          yield* Effect.logInfo(`outbox relay: ${trouble} is back; publishing again`)
          trouble = undefined
        }
        if (claimed === batchSize && published > 0) continue
        yield* wakeup.wait(options.pollInterval)
      }
    })

    // Published rows older than the retention go, in chunks so no statement holds many locks.
    const prune = Effect.gen(function* () {
      let total = 0
      while (true) {
        const [deleted] = yield* sql`
          WITH doomed AS (
            DELETE FROM outbox WHERE id IN (
              SELECT id FROM outbox
              WHERE published_at < now() - make_interval(secs => ${retentionSeconds}::double precision)
              LIMIT ${PRUNE_CHUNK})
            RETURNING 1)
          SELECT count(*)::int AS n FROM doomed`.pipe(prunedRows)
        total += deleted?.n ?? 0
        if ((deleted?.n ?? 0) < PRUNE_CHUNK) break
      }
      if (total > 0) yield* Effect.logDebug(`outbox relay: pruned ${total} published events past retention`)
    }).pipe(Effect.catchAllCause((cause) => Effect.logWarning("outbox relay: pruning old events failed", cause)))

    yield* Effect.forkScoped(relay)
    if (options.listen === true) {
      // Commits anywhere wake this relay (migration 0008); the poll is only a safety net. A lost
      // LISTEN connection is opened again, and each (re)start wakes the relay once for what was
      // committed meanwhile.
      const pg = yield* PgClient.PgClient
      yield* Effect.forkScoped(
        Effect.zipRight(
          wakeup.wake,
          pg.listen("outbox_committed").pipe(Stream.runForEach(() => wakeup.wake))
        ).pipe(
          Effect.catchAllCause((cause) => Effect.logWarning("outbox relay: LISTEN lost; polling until it is back", cause)),
          Effect.zipRight(Effect.sleep("1 second")),
          Effect.forever
        )
      )
    }
    yield* Effect.forkScoped(
      Effect.forever(Effect.zipRight(Effect.sleep(options.pruneEvery ?? Duration.hours(1)), prune))
    )
  })

/** A relay with explicit options (tests, benchmarks). Needs `OutboxWakeup` from `OutboxLive`. */
export const layer = (options: RelayOptions) => Layer.scopedDiscard(make(options))

/** The relay with its settings from the environment. */
export const OutboxRelay = Layer.unwrapEffect(
  Effect.gen(function* () {
    const maxLength = yield* Settings.eventStreamMaxLength
    const retention = yield* Settings.eventRetention
    const pollInterval = yield* Settings.outboxPollInterval
    // Commits wake the relay: this node's through the outbox, other nodes' (and the admin command's)
    // through LISTEN/NOTIFY; on the embedded single node its own. Polling is only a safety net.
    const embedded = Option.isNone(yield* Settings.databaseUrl)
    return layer({
      maxLength,
      retention,
      pollInterval: embedded ? Duration.max(pollInterval, Duration.seconds(5)) : pollInterval,
      listen: !embedded
    })
  })
)
