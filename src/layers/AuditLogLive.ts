import { SqlClient } from "@effect/sql"
import { DateTime, Effect, Layer, Schema } from "effect"
import { AuditLogEntry, AuditPage } from "../rpc/Audit.ts"
import { BadRequest } from "../rpc/Errors.ts"
import { AuditLog } from "../services/AuditLog.ts"
import { decodeRows } from "./Sql.ts"

export const DEFAULT_PAGE_SIZE = 50

/** Cursors are opaque to clients: base64url of a position only this server reads. */
export const makeCursor = (position: string) => Buffer.from(position, "utf8").toString("base64url")

/**
 * The position in `cursor` when it is one this server made and `valid` accepts it; anything else
 * (forged, truncated, from another list) is a 400, never a query.
 */
export const openCursor = (cursor: string, valid: (position: string) => boolean) => {
  const position = /^[A-Za-z0-9_-]+$/.test(cursor) ? Buffer.from(cursor, "base64url").toString("utf8") : ""
  return position !== "" && makeCursor(position) === cursor && valid(position)
    ? Effect.succeed(position)
    : Effect.fail(new BadRequest({ code: "invalid_payload", message: "The cursor is not valid" }))
}

/** A positive integer that fits a Postgres bigint (a larger one would fail the query, not the request). */
export const isBigint = (digits: string) => /^[1-9]\d{0,18}$/.test(digits) && BigInt(digits) <= 9223372036854775807n

/** An entry as selected: `data` as text, since the client's name transform would rewrite the keys inside jsonb. */
const entryRows = decodeRows(
  Schema.Struct({
    ...AuditLogEntry.fields,
    at: Schema.DateTimeUtcFromDate,
    data: Schema.parseJson(AuditLogEntry.fields.data)
  })
)

export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient

  return AuditLog.of({
    record: Effect.fn("AuditLog.record")((entry) =>
      sql`
        INSERT INTO audit_log (organization_id, actor_id, action, target, ip, user_agent, request_id, data, revision)
        VALUES (${entry.organizationId ?? null}, ${entry.actorId ?? null}, ${entry.action}, ${entry.target ?? null},
                ${entry.meta?.ip ?? null}, ${entry.meta?.userAgent ?? null}, ${entry.meta?.requestId ?? null},
                ${JSON.stringify(entry.data ?? {})}::jsonb, ${entry.revision ?? null})`.pipe(
        Effect.asVoid,
        Effect.catchAllCause((cause) => Effect.logError(`audit: could not record ${entry.action}`, cause))
      )
    ),

    list: Effect.fn("AuditLog.list")(function* (member, filter) {
      const limit = filter.limit ?? DEFAULT_PAGE_SIZE
      const after = filter.cursor === undefined ? undefined : yield* openCursor(filter.cursor, isBigint)
      // `at` is shown to the millisecond, so from/to compare at that precision: an `at` passed
      // back as `from` includes its entry, as `to` excludes it.
      const at = sql`date_trunc('milliseconds', created_at)`
      const conditions = [
        sql`organization_id = ${member.organizationId}`,
        ...(filter.actor === undefined ? [] : [sql`actor_id = ${filter.actor}`]),
        ...(filter.action === undefined
          ? []
          : [
              filter.action.endsWith(".") ? sql`starts_with(action, ${filter.action})` : sql`action = ${filter.action}`
            ]),
        ...(filter.target === undefined ? [] : [sql`target = ${filter.target}`]),
        ...(filter.from === undefined ? [] : [sql`${at} >= ${DateTime.toDateUtc(filter.from)}`]),
        ...(filter.to === undefined ? [] : [sql`${at} < ${DateTime.toDateUtc(filter.to)}`]),
        ...(after === undefined ? [] : [sql`id < ${after}::bigint`])
      ]
      const rows = yield* sql`
        SELECT id::text AS id, ${at} AS at, actor_id::text AS "actorId", action, target, ip,
               user_agent AS "userAgent", request_id AS "requestId", revision::text AS revision, data::text AS data
        FROM audit_log
        WHERE ${sql.and(conditions)}
        ORDER BY audit_log.id DESC
        LIMIT ${limit + 1}`.pipe(entryRows, Effect.orDie)
      const items = rows.slice(0, limit).map((row) => new AuditLogEntry(row))
      const last = items[items.length - 1]
      return new AuditPage(
        rows.length > limit && last !== undefined ? { items, nextCursor: makeCursor(last.id) } : { items }
      )
    })
  })
})

export const AuditLogLive = Layer.effect(AuditLog, make)
