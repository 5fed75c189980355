import { Duration, Effect, Layer, Pool } from "effect"
import type { Redis } from "ioredis"
import {
  EventStream,
  EventStreamError,
  type ReaderPosition,
  type ReadResult,
  StreamCursor,
  type StreamEntry
} from "../../services/EventStream.ts"
import { spanned } from "../../services/Span.ts"
import { RedisClient, type RedisError } from "./RedisClient.ts"

type RawEntry = [id: string, fields: Array<string>]

const toEntry = ([id, fields]: RawEntry): StreamEntry => {
  const at = fields.indexOf("p")
  return { id, payload: at >= 0 ? (fields[at + 1] ?? "") : "" }
}

/** The store's clock in ms, inside a script (TIME is allowed: scripts replicate their effects). */
const NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)"

/** KEYS: expiries (sorted set), positions (hash); ARGV: reader, cursor, ttl ms. */
const ACKNOWLEDGE = `${NOW}
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])`

/** KEYS as above. Forgets the readers whose word has run out, then lists the others with positions. */
const READERS = `${NOW}
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #gone > 0 then
  redis.call('HDEL', KEYS[2], unpack(gone))
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
end
local live = redis.call('ZRANGE', KEYS[1], 0, -1)
if #live == 0 then return {} end
local cursors = redis.call('HMGET', KEYS[2], unpack(live))
local out = {}
for i = 1, #live do
  out[2 * i - 1] = live[i]
  out[2 * i] = cursors[i] or '0-0'
end
return out`

const mapError = (error: RedisError) => new EventStreamError({ operation: error.operation, cause: error.cause })

/**
 * Redis Streams: XADD with `MAXLEN ~`, XREAD from a cursor. A blocking read holds one connection
 * from a small pool for its duration, so readers never queue behind each other.
 */
export const make = Effect.gen(function* () {
  const redis = yield* RedisClient
  const blocking = yield* Pool.makeWithTTL({
    acquire: redis.dedicated,
    min: 0,
    max: 8,
    timeToLive: Duration.minutes(1)
  })

  // The oldest and newest retained ids come back in the same round trip as the read itself.
  const readWith = (client: Redis, key: string, cursor: StreamCursor, count: number, blockMs?: number) =>
    Effect.tryPromise({
      try: async () => {
        const pipeline = client.pipeline().xrange(key, "-", "+", "COUNT", 1).xrevrange(key, "+", "-", "COUNT", 1)
        if (blockMs === undefined) pipeline.xread("COUNT", count, "STREAMS", key, cursor)
        else pipeline.xread("COUNT", count, "BLOCK", blockMs, "STREAMS", key, cursor)
        const replies = (await pipeline.exec()) ?? []
        for (const [error] of replies) if (error) throw error
        const first = (replies[0]?.[1] as Array<RawEntry> | undefined)?.[0]?.[0]
        const last = (replies[1]?.[1] as Array<RawEntry> | undefined)?.[0]?.[0]
        const read = replies[2]?.[1] as Array<[string, Array<RawEntry>]> | null
        const entries = read?.[0]?.[1].map(toEntry) ?? []
        return { entries, gap: isGap(cursor, first, last) } satisfies ReadResult
      },
      catch: (cause) => new EventStreamError({ operation: "read", cause })
    })

  return EventStream.of({
    append: spanned("EventStream.append", (stream, payload, options) =>
      redis
        .use("append", (client) =>
          options?.maxLength === undefined
            ? client.xadd(redis.key(stream), "*", "p", payload)
            : client.xadd(redis.key(stream), "MAXLEN", "~", options.maxLength, "*", "p", payload)
        )
        .pipe(
          Effect.map((id) => id ?? StreamCursor.start),
          Effect.mapError(mapError)
        )
    ),
    read: spanned("EventStream.read", (stream, cursor, options) => {
      const count = options?.count ?? 100
      const current = readWith(redis.client, redis.key(stream), cursor, count)
      if (options?.block === undefined) return current
      const blockMs = Math.max(1, Duration.toMillis(options.block))
      const wait = Effect.scoped(
        Effect.gen(function* () {
          const connection = yield* Pool.get(blocking).pipe(
            Effect.mapError((e) => new EventStreamError({ operation: "read", cause: e.cause }))
          )
          // An interrupted blocking read leaves the connection blocked (QUIT would wait for it):
          // cut the socket and drop the connection from the pool.
          return yield* readWith(connection, redis.key(stream), cursor, count, blockMs).pipe(
            Effect.onExit((exit) =>
              exit._tag === "Success"
                ? Effect.void
                : Effect.zipRight(
                    Effect.sync(() => connection.disconnect()),
                    Pool.invalidate(blocking, connection)
                  )
            )
          )
        })
      )
      // Block only when there is nothing to read and nothing lost, so a gap is reported at once.
      return Effect.flatMap(current, (result) =>
        result.entries.length > 0 || result.gap ? Effect.succeed(result) : wait
      )
    }),
    last: spanned("EventStream.last", (stream) =>
      redis
        .use("last", (client) => client.xrevrange(redis.key(stream), "+", "-", "COUNT", 1))
        .pipe(
          Effect.map((entries) => entries[0]?.[0] ?? StreamCursor.start),
          Effect.mapError(mapError)
        )
    ),
    acknowledge: (stream, reader, cursor, ttl) =>
      redis
        .use("acknowledge", (client) =>
          client.eval(
            ACKNOWLEDGE,
            2,
            redis.key(`${stream}:reader-expiries`),
            redis.key(`${stream}:reader-positions`),
            reader,
            cursor,
            Math.max(1, Math.round(Duration.toMillis(ttl)))
          )
        )
        .pipe(Effect.asVoid, Effect.mapError(mapError)),
    readers: (stream) =>
      redis
        .use("readers", (client) =>
          client.eval(READERS, 2, redis.key(`${stream}:reader-expiries`), redis.key(`${stream}:reader-positions`))
        )
        .pipe(
          Effect.map((reply) => {
            const flat = reply as Array<string>
            const positions: Array<ReaderPosition> = []
            for (let i = 0; i + 1 < flat.length; i += 2) positions.push({ reader: flat[i]!, cursor: flat[i + 1]! })
            return positions
          }),
          Effect.mapError(mapError)
        ),
    ping: redis
      .use("ping", (client) => client.ping())
      .pipe(Effect.asVoid, Effect.mapError(mapError), Effect.withSpan("EventStream.ping"))
  })
})

const isGap = (cursor: StreamCursor, first: string | undefined, last: string | undefined) => {
  if (cursor === StreamCursor.start) return false
  if (first === undefined || last === undefined) return true
  return StreamCursor.compare(cursor, first) < 0 || StreamCursor.compare(cursor, last) > 0
}

export const EventStreamRedis = Layer.scoped(EventStream, make)
