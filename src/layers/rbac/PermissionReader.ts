/**
 * The permission store's reads from Postgres, rows decoded by Schema: an organization's revision
 * and status, alone or with some users' standing (membership, enabled flag, assignments), and its
 * policy (roles, parents, grants and catalog). `snapshot` runs reads in one read-only
 * REPEATABLE READ transaction, so they all see one revision.
 *
 * SQL and decoding errors are defects: the store turns any of them into a denial.
 */
import { SqlClient, SqlSchema } from "@effect/sql"
import { SqlError } from "@effect/sql/SqlError"
import { Context, Effect, Layer, Option, Schema } from "effect"
import { spanned } from "../../services/Span.ts"
import type { Assignment } from "../../domain/Decision.ts"
import { makePolicy, type Policy, type Standing } from "../../domain/Policy.ts"
import { assembleRoles } from "../../domain/RoleGraph.ts"
import { GrantRow, ParentRow } from "./RbacSql.ts"

/** An organization's revision and status. */
const Revision = Schema.Struct({
  /** The organization's revision, a string holding an integer. */
  revision: Schema.String,
  status: Schema.Literal("active", "frozen")
})
export type Revision = typeof Revision.Type

const UserStanding = Schema.Struct({
  userId: Schema.String,
  member: Schema.Boolean,
  enabled: Schema.Boolean,
  assignments: Schema.Array(
    Schema.Struct({
      id: Schema.String,
      roleId: Schema.String,
      scopeType: Schema.NullOr(Schema.String),
      scopeId: Schema.NullOr(Schema.String),
      expiresAt: Schema.NullOr(Schema.Date)
    })
  )
})

/** The organization's revision and status, and some users' standing in it, read by one statement. */
const StandingRow = Schema.Struct({
  ...Revision.fields,
  /** JSON text: the client's name transform would otherwise rewrite the keys inside. */
  users: Schema.parseJson(Schema.Array(UserStanding))
})

export interface Standings extends Revision {
  /** Of the users asked about, each one that exists: member or not, enabled or not, their assignments. */
  readonly users: ReadonlyMap<string, Standing>
}

const RoleRow = Schema.Struct({ id: Schema.String, name: Schema.String })
const CatalogRow = Schema.Struct({ key: Schema.String })

export interface PermissionReaderShape {
  /** The organization's revision and status; none when there is no such organization. */
  readonly revision: (organizationId: string) => Effect.Effect<Option.Option<Revision>>
  /**
   * The organization's revision and status with these users' standing, in one statement (so at one
   * revision, with or without a transaction); none when there is no such organization.
   */
  readonly standings: (organizationId: string, userIds: ReadonlyArray<string>) => Effect.Effect<Option.Option<Standings>>
  readonly policy: (organizationId: string) => Effect.Effect<Policy>
  /** Runs `effect` in one read-only REPEATABLE READ transaction: every read in it sees one revision. */
  readonly snapshot: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

export class PermissionReader extends Context.Tag("app/layers/PermissionReader")<
  PermissionReader,
  PermissionReaderShape
>() {}

const toAssignment = (row: (typeof UserStanding.Type)["assignments"][number]): Assignment => ({
  id: row.id,
  roleId: row.roleId,
  scope: row.scopeType !== null && row.scopeId !== null ? { type: row.scopeType, id: row.scopeId } : undefined,
  expiresAt: row.expiresAt?.getTime()
})

export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient

  const findRevision = SqlSchema.findOne({
    Request: Schema.String,
    Result: Revision,
    execute: (organizationId) => sql`
      SELECT revision::text AS revision, status FROM organizations WHERE id = ${organizationId}`
  })

  const findStandings = SqlSchema.findOne({
    Request: Schema.Struct({ organizationId: Schema.String, userIds: Schema.Array(Schema.String) }),
    Result: StandingRow,
    execute: ({ organizationId, userIds }) => sql`
      SELECT o.revision::text AS revision, o.status, COALESCE((
        SELECT json_agg(json_build_object(
          'userId', u.id,
          'member', EXISTS (SELECT 1 FROM memberships m WHERE m.organization_id = o.id AND m.user_id = u.id),
          'enabled', u.disabled_at IS NULL,
          'assignments', COALESCE((
            SELECT json_agg(json_build_object('id', a.id, 'roleId', a.role_id, 'scopeType', a.scope_type,
              'scopeId', a.scope_id, 'expiresAt', a.expires_at))
            FROM assignments a WHERE a.organization_id = o.id AND a.user_id = u.id), '[]'::json)))
        FROM users u WHERE u.id = ANY(${userIds}::uuid[])), '[]'::json)::text AS users
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

  return PermissionReader.of({
    revision: spanned("PermissionReader.revision", (organizationId) =>
      findRevision(organizationId).pipe(Effect.orDie)
    ),

    standings: spanned("PermissionReader.standings", (organizationId, userIds) =>
      findStandings({ organizationId, userIds }).pipe(
        Effect.map(
          Option.map(({ users, ...revision }) => ({
            ...revision,
            users: new Map(
              users.map(({ userId, member, enabled, assignments }) => [
                userId,
                { member, enabled, assignments: assignments.map(toAssignment) }
              ])
            )
          }))
        ),
        Effect.orDie
      )
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

    snapshot: <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.zipRight(sql`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY`.pipe(Effect.orDie), effect).pipe(
        sql.withTransaction,
        Effect.catchIf((error): error is SqlError => error instanceof SqlError, Effect.die),
        Effect.withSpan("PermissionReader.snapshot")
      )
  })
})

export const PermissionReaderLive = Layer.effect(PermissionReader, make)
