import { randomUUID } from "node:crypto"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { describe, expect, it } from "@effect/vitest"
import { type Context, Duration, Effect, Exit, Layer, Logger, Option, Redacted, Schema, String as Str } from "effect"
import { inject } from "vitest"
import { runMigrations } from "../../src/layers/Database.ts"
import { OutboxLive } from "../../src/layers/events/OutboxLive.ts"
import { layer as relayLayer } from "../../src/layers/events/OutboxRelay.ts"
import { EventStreamMemory } from "../../src/layers/memory/EventStreamMemory.ts"
import { EventStreamRedis } from "../../src/layers/redis/EventStreamRedis.ts"
import { make as makeRedisClient, RedisClient } from "../../src/layers/redis/RedisClient.ts"
import { NotFound } from "../../src/rpc/Errors.ts"
import { EventStream, EventStreamError, StreamCursor } from "../../src/services/EventStream.ts"
import { Outbox, type OutboxEvent, OutboxEventJson, PERMISSION_EVENTS_STREAM } from "../../src/services/Outbox.ts"
import { startRedis } from "../support/Servers.ts"
import { createTestDatabase, testRedisPrefix } from "../support/TestDatabase.ts"

// --- throwaway infrastructure -------------------------------------------------------------------

/** A fresh, migrated database for the test, dropped with its scope. */
const freshDatabase = Effect.gen(function* () {
  const database = yield* Effect.acquireRelease(
    Effect.promise(() => createTestDatabase()),
    (database) => Effect.promise(() => database.drop())
  )
  yield* runMigrations.pipe(Effect.provide(postgres(database.url)), Effect.provide(Logger.remove(Logger.defaultLogger)))
  return database.url
})

/** The client as production configures it (name transforms on), one pool per "node". */
const postgres = (url: string) =>
  PgClient.layer({
    url: Redacted.make(url),
    transformResultNames: Str.snakeToCamel,
    transformQueryNames: Str.camelToSnake
  })

const redisStream = (url: string, prefix: string) =>
  EventStreamRedis.pipe(Layer.provide(Layer.scoped(RedisClient, makeRedisClient(Redacted.make(url), prefix))))

interface LogLine {
  readonly level: string
  readonly message: string
}

const capture = (lines: Array<LogLine>) =>
  Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ logLevel, message }) => {
      lines.push({ level: logLevel.label, message: String(Array.isArray(message) ? message[0] : message) })
    })
  )

/** One node's outbox and relay over its own pool; returns its services for the rest of the scope. */
const startNode = (
  url: string,
  stream: Layer.Layer<EventStream, unknown>,
  options: Partial<Parameters<typeof relayLayer>[0]> = {},
  logs: Array<LogLine> = []
) =>
  Layer.build(
    relayLayer({
      maxLength: 100_000,
      retention: Duration.days(7),
      pollInterval: Duration.millis(100),
      ...options
    }).pipe(
      Layer.provideMerge(OutboxLive),
      Layer.provideMerge(stream),
      Layer.provideMerge(postgres(url)),
      Layer.provide(capture(logs))
    )
  )

type Node = Context.Context<Outbox | SqlClient.SqlClient | EventStream>

const on =
  (node: Node) =>
  <A, E>(effect: Effect.Effect<A, E, Outbox | SqlClient.SqlClient | EventStream>) =>
    Effect.provide(effect, node)

// --- domain helpers -----------------------------------------------------------------------------

const createOrganization = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const [row] = yield* sql<{ id: string }>`
    INSERT INTO organizations (slug, name) VALUES (${`org-${randomUUID()}`}, 'Test') RETURNING id`
  return row!.id
})

/** A permission change: a new role, recorded with its event, committed together. */
const addRole = (organizationId: string, name = `role-${randomUUID()}`) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const outbox = yield* Outbox
    return yield* outbox.transaction(
      Effect.gen(function* () {
        yield* sql`INSERT INTO roles (organization_id, name) VALUES (${organizationId}, ${name})`
        return yield* outbox.record(organizationId, [{ type: "role.created", payload: { name } }])
      })
    )
  })

const revisionOf = (organizationId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql<{ revision: string }>`SELECT revision::text AS revision FROM organizations WHERE id = ${organizationId}`.pipe(
      Effect.map((rows) => rows[0]!.revision)
    )
  )

const unpublished = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql<{ n: number }>`SELECT count(*)::int AS n FROM outbox WHERE published_at IS NULL`.pipe(
    Effect.map((rows) => rows[0]!.n)
  )
)

const eventually = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  done: (a: A) => boolean,
  timeout: Duration.DurationInput = "15 seconds"
) =>
  Effect.gen(function* () {
    while (true) {
      const value = yield* effect
      if (done(value)) return value
      yield* Effect.sleep("50 millis")
    }
  }).pipe(Effect.timeoutFail({ duration: timeout, onTimeout: () => new Error("condition not reached in time") }))

const decode = Schema.decodeUnknownSync(OutboxEventJson)

/** Every entry of the permission events stream, oldest first, decoded. */
const readStream = Effect.gen(function* () {
  const events = yield* EventStream
  const all: Array<OutboxEvent> = []
  let cursor = StreamCursor.start
  while (true) {
    const { entries } = yield* events.read(PERMISSION_EVENTS_STREAM, cursor, { count: 1000 })
    if (entries.length === 0) return all
    for (const entry of entries) all.push(decode(entry.payload))
    cursor = entries.at(-1)!.id
  }
})

/**
 * Checks what consumers rely on: once de-duplicated by event id, each organization's events come
 * in strictly increasing revisions without a gap, one event per revision here. Returns the
 * revisions seen per organization and how many entries were duplicates.
 */
const checkDelivery = (events: ReadonlyArray<OutboxEvent>) => {
  const seen = new Set<string>()
  const perOrganization = new Map<string, Array<bigint>>()
  let duplicates = 0
  for (const event of events) {
    if (seen.has(event.id)) {
      duplicates += 1
      continue
    }
    seen.add(event.id)
    const revisions = perOrganization.get(event.organizationId!) ?? []
    revisions.push(BigInt(event.revision!))
    perOrganization.set(event.organizationId!, revisions)
  }
  for (const [organization, revisions] of perOrganization) {
    for (let i = 1; i < revisions.length; i++) {
      expect(revisions[i], `organization ${organization}, entry ${i}`).toBe(revisions[i - 1]! + 1n)
    }
  }
  return { perOrganization, duplicates }
}

// --- tests --------------------------------------------------------------------------------------

describe("Outbox.record", () => {
  it.scopedLive(
    "a change that fails or loses its connection after recording leaves neither the revision bump nor the event (R5)",
    () =>
      Effect.gen(function* () {
        const node = yield* startNode(yield* freshDatabase, EventStreamMemory)
        yield* on(node)(
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            const outbox = yield* Outbox
            const org = yield* createOrganization
            const roles = sql<{ n: number }>`SELECT count(*)::int AS n FROM roles WHERE organization_id = ${org}`
            const events = sql<{ n: number }>`SELECT count(*)::int AS n FROM outbox WHERE organization_id = ${org}`
            const failAfterRecord = (end: Effect.Effect<never, string>) =>
              outbox.transaction(
                Effect.gen(function* () {
                  yield* sql`INSERT INTO roles (organization_id, name) VALUES (${org}, 'editor')`
                  const revision = yield* outbox.record(org, [{ type: "role.created", payload: { name: "editor" } }])
                  expect(revision).toBe("1")
                  return yield* end
                })
              )

            expect(Exit.isFailure(yield* Effect.exit(failAfterRecord(Effect.fail("refused"))))).toBe(true)
            expect(Exit.isFailure(yield* Effect.exit(failAfterRecord(Effect.die("crash"))))).toBe(true)
            // Postgres drops the connection mid-transaction, after the outbox row was written.
            const dropped = outbox.transaction(
              Effect.gen(function* () {
                yield* sql`INSERT INTO roles (organization_id, name) VALUES (${org}, 'editor')`
                yield* outbox.record(org, [{ type: "role.created", payload: { name: "editor" } }])
                yield* sql`SELECT pg_terminate_backend(pg_backend_pid())`
              })
            )
            expect(Exit.isFailure(yield* Effect.exit(dropped))).toBe(true)
            expect(yield* revisionOf(org)).toBe("0")
            expect((yield* roles)[0]!.n).toBe(0)
            expect((yield* events)[0]!.n).toBe(0)

            // The same change committed: both are there, with the revision the caller got.
            expect(yield* addRole(org, "editor")).toBe("1")
            expect(yield* revisionOf(org)).toBe("1")
            expect((yield* events)[0]!.n).toBe(1)
          })
        )
      })
  )

  it.scopedLive("refuses to run outside a transaction, and fails with NotFound for an unknown organization", () =>
    Effect.gen(function* () {
      const node = yield* startNode(yield* freshDatabase, EventStreamMemory)
      yield* on(node)(
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const outbox = yield* Outbox
          const org = yield* createOrganization
          const outside = yield* Effect.exit(outbox.record(org, [{ type: "x", payload: {} }]))
          expect(Exit.isFailure(outside) && outside.cause._tag).toBe("Die")
          expect(yield* revisionOf(org)).toBe("0")

          const unknown = yield* Effect.either(
            outbox.transaction(
              Effect.gen(function* () {
                yield* sql`UPDATE organizations SET name = 'renamed' WHERE id = ${org}`
                return yield* outbox.record(randomUUID(), [{ type: "x", payload: {} }])
              })
            )
          )
          expect(unknown._tag === "Left" && unknown.left).toBeInstanceOf(NotFound)
          const [row] = yield* sql<{ name: string }>`SELECT name FROM organizations WHERE id = ${org}`
          expect(row!.name).toBe("Test")
        })
      )
    })
  )

  it.scopedLive("concurrent changes of one organization get consecutive revisions, in commit order", () =>
    Effect.gen(function* () {
      const node = yield* startNode(yield* freshDatabase, EventStreamMemory)
      yield* on(node)(
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const outbox = yield* Outbox
          const org = yield* createOrganization
          const now = sql<{ t: string }>`SELECT (extract(epoch FROM clock_timestamp()) * 1e6)::bigint::text AS t`.pipe(
            Effect.map((rows) => BigInt(rows[0]!.t))
          )
          // Each change holds its transaction open a little after recording; every fifth one fails
          // after recording, and must leave no gap behind.
          const change = (i: number) =>
            outbox.transaction(
              Effect.gen(function* () {
                const revision = yield* outbox.record(org, [{ type: "role.created", payload: { i } }])
                const recordedAt = yield* now
                yield* sql`SELECT pg_sleep(${(i % 7) / 1000})`
                if (i % 5 === 0) return yield* Effect.fail("refused")
                return { revision: BigInt(revision), recordedAt, committingAt: yield* now }
              })
            )
          const results = yield* Effect.forEach(
            Array.from({ length: 40 }, (_, i) => i),
            (i) => Effect.option(change(i)),
            { concurrency: 8 }
          )
          const committed = results.flatMap((r) => (Option.isSome(r) ? [r.value] : []))
          committed.sort((a, b) => (a.revision < b.revision ? -1 : 1))
          expect(committed.length).toBe(32)
          expect(committed.map((c) => c.revision)).toEqual(Array.from({ length: 32 }, (_, i) => BigInt(i + 1)))
          // A revision is taken only once the change before it has finished: commit order.
          for (let i = 1; i < committed.length; i++) {
            expect(committed[i]!.recordedAt).toBeGreaterThanOrEqual(committed[i - 1]!.committingAt)
          }
          expect(yield* revisionOf(org)).toBe("32")
          const rows = yield* sql<{ id: string; revision: string }>`
            SELECT id::text AS id, revision::text AS revision FROM outbox WHERE organization_id = ${org} ORDER BY outbox.id`
          expect(rows.map((r) => Number(r.revision))).toEqual(Array.from({ length: 32 }, (_, i) => i + 1))
        })
      )
    })
  )
})

describe("Outbox.eventsSince", () => {
  it.scopedLive("returns an organization's events after a revision, in order, payloads intact", () =>
    Effect.gen(function* () {
      const node = yield* startNode(yield* freshDatabase, EventStreamMemory)
      yield* on(node)(
        Effect.gen(function* () {
          const outbox = yield* Outbox
          const org = yield* createOrganization
          const other = yield* createOrganization
          const payload = { role_id: "r1", nestedKey: { inner_key: [1, "two", null] } }
          // Eleven revisions: a sort by text would put "10" and "11" before "9".
          for (let i = 1; i <= 11; i++) {
            yield* outbox.transaction(
              outbox.record(org, [
                { type: `first.${i}`, payload: { ...payload, i } },
                { type: `second.${i}`, payload: { i } }
              ])
            )
            yield* addRole(other)
          }

          const after8 = yield* outbox.eventsSince(org, "8")
          expect(after8.map((e) => [e.revision, e.type])).toEqual([
            ["9", "first.9"],
            ["9", "second.9"],
            ["10", "first.10"],
            ["10", "second.10"],
            ["11", "first.11"],
            ["11", "second.11"]
          ])
          expect(after8[0]).toMatchObject({ organizationId: org, payload: { ...payload, i: 9 } })
          expect(Date.parse(after8[0]!.createdAt)).toBeGreaterThan(0)
          expect(yield* outbox.eventsSince(org, "11")).toEqual([])
          expect((yield* outbox.eventsSince(org, "0", { limit: 3 })).map((e) => e.type)).toEqual([
            "first.1",
            "second.1",
            "first.2"
          ])
          expect((yield* outbox.eventsSince(other, "9")).map((e) => e.revision)).toEqual(["10", "11"])
        })
      )
    })
  )
})

describe("OutboxRelay", () => {
  it.scopedLive(
    "R1: changes committed while Redis is down are all delivered, in order, once it is back empty",
    () =>
      Effect.gen(function* () {
        const redis = yield* Effect.acquireRelease(
          Effect.promise(() => startRedis()),
          (redis) => Effect.promise(() => redis.stop())
        )
        const logs: Array<LogLine> = []
        const node = yield* startNode(yield* freshDatabase, redisStream(redis.url, testRedisPrefix()), {}, logs)
        yield* on(node)(
          Effect.gen(function* () {
            const orgs = [yield* createOrganization, yield* createOrganization, yield* createOrganization]
            yield* addRole(orgs[0]!)
            yield* eventually(unpublished, (n) => n === 0)

            yield* Effect.promise(() => redis.stop())
            yield* Effect.forEach(
              Array.from({ length: 200 }, (_, i) => orgs[i % 3]!),
              (org) => addRole(org),
              { concurrency: 6 }
            )
            // The relay keeps trying; nothing is marked published while the stream is down.
            yield* Effect.sleep("1 second")
            expect(yield* unpublished).toBe(200)

            yield* Effect.promise(() => redis.start())
            yield* eventually(unpublished, (n) => n === 0)

            const delivered = yield* readStream
            const { perOrganization } = checkDelivery(delivered)
            expect(new Set(delivered.map((e) => e.id)).size).toBe(200)
            // Redis came back empty: the stream holds exactly what was committed during the outage.
            expect(perOrganization.get(orgs[0]!)).toEqual(Array.from({ length: 67 }, (_, i) => BigInt(i + 2)))
            expect(perOrganization.get(orgs[1]!)).toEqual(Array.from({ length: 67 }, (_, i) => BigInt(i + 1)))
            expect(perOrganization.get(orgs[2]!)).toEqual(Array.from({ length: 66 }, (_, i) => BigInt(i + 1)))
          })
        )
        const relayLines = logs.filter((line) => line.message.startsWith("outbox relay"))
        expect(relayLines).toEqual([
          {
            level: "WARN",
            message:
              "outbox relay: event stream unavailable; committed events stay in Postgres and are published once it is back"
          },
          { level: "INFO", message: "outbox relay: event stream is back; publishing again" }
        ])
      }),
    30_000
  )

  it.scopedLive("two relays on one database share the work: every event once, in order per organization", () =>
    Effect.gen(function* () {
      const url = yield* freshDatabase
      const prefix = testRedisPrefix()
      const appended = [0, 0]
      // Each node's stream counts what its relay appends.
      const counted = (index: number) =>
        Layer.effect(
          EventStream,
          Effect.map(EventStream, (events) =>
            EventStream.of({
              ...events,
              append: (stream, payload, options) =>
                Effect.tap(events.append(stream, payload, options), () => {
                  appended[index]! += 1
                })
            })
          )
        ).pipe(Layer.provide(redisStream(inject("redisUrl"), prefix)))
      // Small batches, so the relays often hold different rows of one organization at once.
      const nodes = [
        yield* startNode(url, counted(0), { batchSize: 7 }),
        yield* startNode(url, counted(1), { batchSize: 7 })
      ]
      const orgs = yield* on(nodes[0]!)(Effect.all([createOrganization, createOrganization, createOrganization]))
      yield* Effect.forEach(
        Array.from({ length: 300 }, (_, i) => i),
        (i) => on(nodes[i % 2]!)(addRole(orgs[i % 3]!)),
        { concurrency: 10 }
      )
      yield* on(nodes[0]!)(eventually(unpublished, (n) => n === 0))

      const delivered = yield* on(nodes[1]!)(readStream)
      const { perOrganization, duplicates } = checkDelivery(delivered)
      expect(duplicates).toBe(0)
      expect(delivered.length).toBe(300)
      for (const org of orgs) {
        expect(perOrganization.get(org)).toEqual(Array.from({ length: 100 }, (_, i) => BigInt(i + 1)))
      }
      expect(appended[0]! + appended[1]!).toBe(300)
      expect(appended[0]).toBeGreaterThan(0)
      expect(appended[1]).toBeGreaterThan(0)
    })
  )

  it.scopedLive("keeps unpublished events whatever their age, and prunes published ones past retention", () =>
    Effect.gen(function* () {
      const url = yield* freshDatabase
      const short = { retention: Duration.millis(200), pruneEvery: Duration.millis(100) }
      const down = Layer.succeed(
        EventStream,
        EventStream.of({
          append: () => Effect.fail(new EventStreamError({ operation: "append", cause: "down" })),
          read: () => Effect.fail(new EventStreamError({ operation: "read", cause: "down" })),
          last: () => Effect.fail(new EventStreamError({ operation: "last", cause: "down" })),
          ping: Effect.fail(new EventStreamError({ operation: "ping", cause: "down" })),
          acknowledge: () => Effect.fail(new EventStreamError({ operation: "acknowledge", cause: "down" })),
          readers: () => Effect.fail(new EventStreamError({ operation: "readers", cause: "down" }))
        })
      )
      const org = yield* Effect.scoped(
        Effect.gen(function* () {
          const node = yield* startNode(url, down, short)
          return yield* on(node)(
            Effect.gen(function* () {
              const org = yield* createOrganization
              yield* addRole(org)
              yield* addRole(org)
              yield* Effect.sleep("700 millis")
              expect(yield* unpublished).toBe(2)
              return org
            })
          )
        })
      )

      const node = yield* startNode(url, EventStreamMemory, short)
      yield* on(node)(
        Effect.gen(function* () {
          const outbox = yield* Outbox
          const events = yield* EventStream
          yield* eventually(
            Effect.map(events.read(PERMISSION_EVENTS_STREAM, StreamCursor.start), (r) => r.entries.length),
            (n) => n === 2
          )
          // Gone from Postgres after the retention; a consumer asking for them sees they are missing.
          yield* eventually(outbox.eventsSince(org, "0"), (events) => events.length === 0, "5 seconds")
          expect(yield* revisionOf(org)).toBe("2")
        })
      )
    })
  )
})
