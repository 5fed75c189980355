import { SqlClient } from "@effect/sql"
import { Effect, Layer } from "effect"
import { AuditLog } from "../services/AuditLog.ts"

export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  return AuditLog.of({
    record: (entry) =>
      sql`
        INSERT INTO audit_log (organization_id, actor_id, action, target, ip, user_agent, request_id, data, revision)
        VALUES (${entry.organizationId ?? null}, ${entry.actorId ?? null}, ${entry.action}, ${entry.target ?? null},
                ${entry.meta?.ip ?? null}, ${entry.meta?.userAgent ?? null}, ${entry.meta?.requestId ?? null},
                ${JSON.stringify(entry.data ?? {})}::jsonb, ${entry.revision ?? null})`.pipe(
        Effect.asVoid,
        Effect.catchAllCause((cause) => Effect.logError(`audit: could not record ${entry.action}`, cause))
      )
  })
})

export const AuditLogLive = Layer.effect(AuditLog, make)
