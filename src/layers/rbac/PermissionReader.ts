/**
 * The permission store's reads from Postgres, rows decoded by Schema: an organization's head (its
 * revision and status, and the membership and enabled flag of some users), its policy (roles,
 * parents, grants and catalog) and a user's assignments. `snapshot` runs reads in one read-only
 * REPEATABLE READ transaction, so they all see one revision.
 *
 * SQL and decoding errors are defects: the store turns any of them into a denial.
 */
import { SqlClient, SqlSchema } from "@effect/sql"
import { SqlError } from "@effect/sql/SqlError"
import { Context, Effect, Layer, type Option, Schema } from "effect"
import { spanned } from "../../services/Span.ts"
import type { Assignment } from "../../domain/Decision.ts"
import { makePolicy, type Policy } from "../../domain/Policy.ts"
import { assembleRoles } from "../../domain/RoleGraph.ts"
import { GrantRow, ParentRow } from "./RbacSql.ts"

const Head = Schema.Struct({
  /** The organization's revision, a string holding an integer. */
  revision: Schema.String,
  status: Schema.Literal("active", "frozen"),
  /** Of the users asked about, those who are members. */
  members: Schema.Array(Schema.String),
  /** Of the users asked about, those not disabled. */
  enabled: Schema.Array(Schema.String)
})
export type Head = typeof Head.Type

const HeadRequest = Schema.Struct({ organizationId: Schema.String, userIds: Schema.Array(Schema.String) })

const RoleRow = Schema.Struct({ id: Schema.String, name: Schema.String })
const CatalogRow = Schema.Struct({ key: Schema.String })
const AssignmentRow = Schema.Struct({
  id: Schema.String,
  roleId: Schema.String,
  scopeType: Schema.NullOr(Schema.String),
  scopeId: Schema.NullOr(Schema.String),
  expiresAt: Schema.NullOr(Schema.DateFromSelf)
})
const AssignmentRequest = Schema.Struct({ organizationId: Schema.String, userId: Schema.String })

export interface PermissionReaderShape {
  /** The organization's head with these users' standing; none when there is no such organization. */
  readonly head: (organizationId: string, userIds: ReadonlyArray<string>) => Effect.Effect<Option.Option<Head>>
  readonly policy: (organizationId: string) => Effect.Effect<Policy>
  readonly assignments: (organizationId: string, userId: string) => Effect.Effect<ReadonlyArray<Assignment>>
  /** Runs `effect` in one read-only REPEATABLE READ transaction: every read in it sees one revision. */
  readonly snapshot: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

export class PermissionReader extends Context.Tag("app/layers/PermissionReader")<
  PermissionReader,
  PermissionReaderShape
>() {}

export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient

  const findHead = SqlSchema.findOne({
    Request: HeadRequest,
    Result: Head,
    execute: ({ organizationId, userIds }) => sql`
      SELECT o.revision::text AS revision, o.status,
        ARRAY(SELECT m.user_id::text FROM memberships m
              WHERE m.organization_id = o.id AND m.user_id = ANY(${userIds}::uuid[])) AS members,
        ARRAY(SELECT u.id::text FROM users u WHERE u.id = ANY(${userIds}::uuid[]) AND u.disabled_at IS NULL) AS enabled
      FROM organizations o WHERE o.id = ${organizationId}`
  })

  const findRoles = SqlSchema.findAll({
    Request: Schema.String,
    Result: RoleRow,
    execute: (organizationId) => sql`SELECT id, name FROM roles WHERE organization_id = ${organizationId}`
  })

  const findParents = SqlSchema.findAll({
    Request: Schema.String,
    Result: ParentRow,
    execute: (organizationId) => sql`
      SELECT role_id, parent_id FROM role_parents WHERE organization_id = ${organizationId}`
  })

  const findGrants = SqlSchema.findAll({
    Request: Schema.String,
    Result: GrantRow,
    execute: (organizationId) => sql`
      SELECT role_id, permission, effect, condition::text AS condition FROM role_grants
      WHERE organization_id = ${organizationId} ORDER BY id`
  })

  const findCatalog = SqlSchema.findAll({
    Request: Schema.String,
    Result: CatalogRow,
    execute: (organizationId) => sql`
      SELECT DISTINCT key FROM permissions WHERE organization_id IS NULL OR organization_id = ${organizationId}
      ORDER BY key`
  })

  const findAssignments = SqlSchema.findAll({
    Request: AssignmentRequest,
    Result: AssignmentRow,
    execute: ({ organizationId, userId }) => sql`
      SELECT id, role_id, scope_type, scope_id, expires_at FROM assignments
      WHERE organization_id = ${organizationId} AND user_id = ${userId}`
  })

  return PermissionReader.of({
    head: spanned("PermissionReader.head", (organizationId, userIds) =>
      findHead({ organizationId, userIds }).pipe(Effect.orDie)
    ),

    policy: Effect.fn("PermissionReader.policy")(function* (organizationId) {
      const roles = yield* findRoles(organizationId)
      const parents = yield* findParents(organizationId)
      const grants = yield* findGrants(organizationId)
      const catalog = yield* findCatalog(organizationId)
      const graph = assembleRoles(
        roles,
        parents,
        grants.map((grant) => ({ ...grant, condition: grant.condition ?? undefined }))
      )
      return makePolicy(
        graph,
        catalog.map((row) => row.key)
      )
    }, Effect.orDie),

    assignments: spanned("PermissionReader.assignments", (organizationId, userId) =>
      findAssignments({ organizationId, userId }).pipe(
        Effect.map((rows) =>
          rows.map(
            (row): Assignment => ({
              id: row.id,
              roleId: row.roleId,
              scope:
                row.scopeType !== null && row.scopeId !== null ? { type: row.scopeType, id: row.scopeId } : undefined,
              expiresAt: row.expiresAt?.getTime()
            })
          )
        ),
        Effect.orDie
      )
    ),

    snapshot: <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.zipRight(sql`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY`.pipe(Effect.orDie), effect).pipe(
        sql.withTransaction,
        Effect.catchIf((error): error is SqlError => error instanceof SqlError, Effect.die),
        Effect.withSpan("PermissionReader.snapshot")
      )
  })
})

export const PermissionReaderLive = Layer.effect(PermissionReader, make)
