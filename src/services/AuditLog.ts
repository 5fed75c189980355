/**
 * AuditLog: the append-only record of security events (who, what, target, when in UTC, ip, user
 * agent, request id). Owns writing entries and reading an organization's entries back; never
 * stores passwords or tokens. Postgres refuses UPDATE and DELETE on the table (migration 0004).
 * Does not own: who may read them (the guard checks `audit:read`).
 */
import { Context, type DateTime, type Effect } from "effect"
import type { AuditPage } from "../rpc/Audit.ts"
import type { BadRequest } from "../rpc/Errors.ts"
import type { Member } from "../rpc/Security.ts"

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

export interface AuditFilter {
  readonly actor?: string | undefined
  /** An exact action, or every action it starts when it ends with a dot (`role.`). */
  readonly action?: string | undefined
  readonly target?: string | undefined
  /** Inclusive; compared with the entry's time to the millisecond (as `at` shows it). */
  readonly from?: DateTime.Utc | undefined
  /** Exclusive; compared the same way. */
  readonly to?: DateTime.Utc | undefined
  /** The `nextCursor` of the previous page; a cursor this service did not make fails with BadRequest. */
  readonly cursor?: string | undefined
  /** 1..200, 50 by default. */
  readonly limit?: number | undefined
}

export interface AuditLogShape {
  /** Writes the entry; a failure is logged, never passed to the caller. */
  readonly record: (entry: AuditEntry) => Effect.Effect<void>
  /**
   * The entries of the member's organization (never another's), newest first (by id: the order
   * they were written in), `limit` at a time.
   */
  readonly list: (member: Member, filter: AuditFilter) => Effect.Effect<AuditPage, BadRequest>
}

export class AuditLog extends Context.Tag("app/AuditLog")<AuditLog, AuditLogShape>() {}
