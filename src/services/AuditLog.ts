/**
 * AuditLog: the append-only record of security events (who, what, target, when in UTC, ip, user
 * agent, request id). Owns writing entries; never stores passwords or tokens.
 */
import { Context, type Effect } from "effect"

export interface RequestMeta {
  readonly ip: string
  readonly userAgent: string | null
  readonly requestId: string
}

export interface AuditEntry {
  readonly action: string
  readonly actorId?: string | null
  readonly organizationId?: string | null
  readonly target?: string | null
  /** What changed, e.g. `{ before, after }` summaries; never secrets. */
  readonly data?: Record<string, unknown>
  readonly meta?: RequestMeta
  /** The organization's revision the change produced, when it changed permissions. */
  readonly revision?: string | null
}

export interface AuditLogShape {
  /** Writes the entry; a failure is logged, never passed to the caller. */
  readonly record: (entry: AuditEntry) => Effect.Effect<void>
}

export class AuditLog extends Context.Tag("app/AuditLog")<AuditLog, AuditLogShape>() {}
