/**
 * The RBAC services in-process for layer tests: the real layers on a throwaway, migrated Postgres
 * database (dropped with the layer), the in-memory key-value store, and a mailbox in place of the
 * mailer. Plus the few steps every test takes: users, an organization, joining by invitation.
 */
import { randomUUID } from "node:crypto"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Layer, Redacted, String as Str, TestClock } from "effect"
import { AuditLogLive } from "../../src/layers/AuditLogLive.ts"
import { runMigrations } from "../../src/layers/Database.ts"
import { OutboxLive } from "../../src/layers/events/OutboxLive.ts"
import { EventStreamMemory } from "../../src/layers/memory/EventStreamMemory.ts"
import { KeyValueStoreMemory } from "../../src/layers/memory/KeyValueStoreMemory.ts"
import { InvitationsLive } from "../../src/layers/rbac/InvitationsLive.ts"
import { MembersLive } from "../../src/layers/rbac/MembersLive.ts"
import { OrganizationsLive } from "../../src/layers/rbac/OrganizationsLive.ts"
import { PermissionStoreLive } from "../../src/layers/rbac/PermissionStoreLive.ts"
import { RolesLive } from "../../src/layers/rbac/RolesLive.ts"
import type { Member, SignedIn } from "../../src/rpc/Security.ts"
import type { RequestMeta } from "../../src/services/AuditLog.ts"
import { Invitations } from "../../src/services/Invitations.ts"
import { Mailer, type MailMessage } from "../../src/services/Mailer.ts"
import { Organizations } from "../../src/services/Organizations.ts"
import { Outbox } from "../../src/services/Outbox.ts"
import { PermissionStore } from "../../src/services/PermissionStore.ts"
import { Roles } from "../../src/services/Roles.ts"
import { createTestDatabase } from "../support/TestDatabase.ts"

/** Every message the services handed to the mailer, oldest first. */
export class Mailbox extends Context.Tag("test/Mailbox")<Mailbox, Array<MailMessage>>() {}

const MailboxLive = Layer.effectContext(
  Effect.sync(() => {
    const sent: Array<MailMessage> = []
    return Context.make(Mailbox, sent).pipe(
      Context.add(
        Mailer,
        Mailer.of({
          send: (message) =>
            Effect.sync(() => {
              sent.push(message)
            })
        })
      )
    )
  })
)

/** A fresh database with every migration applied, and a client configured as production's. */
export const DatabaseTest = Layer.unwrapScoped(
  Effect.gen(function* () {
    const database = yield* Effect.acquireRelease(
      Effect.promise(() => createTestDatabase()),
      (database) => Effect.promise(() => database.drop())
    )
    const client = PgClient.layer({
      url: Redacted.make(database.url),
      transformResultNames: Str.snakeToCamel,
      transformQueryNames: Str.camelToSnake
    })
    return Layer.effectDiscard(runMigrations).pipe(Layer.provideMerge(client))
  })
)

/** When the TestClock starts: now, so the TestClock and the database's `now()` roughly agree. */
export const STARTED_AT = Date.now()

/**
 * Sets the TestClock to `STARTED_AT` before any layer forks a fiber that sleeps: moving it later
 * from 0 to today would replay every periodic wake-up in between.
 */
export const ClockAtStart = Layer.effectDiscard(TestClock.setTime(STARTED_AT))

/** Outbox, audit log, key-value store and mailbox over the test database. */
export const InfraTest = Layer.mergeAll(OutboxLive, AuditLogLive, KeyValueStoreMemory, EventStreamMemory, MailboxLive).pipe(
  Layer.provideMerge(DatabaseTest),
  Layer.provideMerge(ClockAtStart)
)

/** Organizations, Roles, Members, Invitations and the PermissionStore, as Main.ts composes them. */
export const RbacTest = Layer.mergeAll(OrganizationsLive, RolesLive, MembersLive, InvitationsLive).pipe(
  Layer.provideMerge(PermissionStoreLive),
  Layer.provideMerge(InfraTest)
)

export const meta: RequestMeta = { ip: "127.0.0.1", userAgent: "layer-test", requestId: "test" }

export interface TestUser extends SignedIn {
  readonly email: string
}

/** A user with a session, straight into the table (signing up is Auth's business). */
export const createUser = (label: string) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const email = `${label}-${randomUUID()}@example.com`
    const rows = yield* sql`INSERT INTO users (email, name) VALUES (${email}, ${label}) RETURNING id::text AS id`
    return { userId: String(rows[0]!.id), sessionId: randomUUID(), email } satisfies TestUser
  }).pipe(Effect.orDie)

/** A new organization with `owner` as its owner; returns the owner as a member of it. */
export const createOrganization = (owner: TestUser) =>
  Effect.gen(function* () {
    const organizations = yield* Organizations
    const slug = `org-${randomUUID()}`
    const organization = yield* organizations.create(owner, { name: "Test organization", slug }, meta)
    return { ...owner, organizationId: organization.id } satisfies Member
  }).pipe(Effect.orDie)

export const asMember = (user: TestUser, organizationId: string): Member & TestUser => ({ ...user, organizationId })

/** The id of the organization's role with this name. */
export const roleId = (member: Member, name: string) =>
  Effect.flatMap(Roles, (roles) => roles.list(member)).pipe(
    Effect.map((roles) => roles.find((role) => role.name === name)!.id)
  )

/** The token in the last invitation mailed to `email`. */
export const mailedToken = (email: string) =>
  Effect.map(Mailbox, (sent) => {
    const message = sent.findLast((message) => message.to === email)
    return message?.text.match(/token=([A-Za-z0-9_-]+)/)?.[1]
  })

/** `user` invited by `inviter` with these roles, and joined. */
export const join = (inviter: Member, user: TestUser, roleNames: ReadonlyArray<string> = []) =>
  Effect.gen(function* () {
    const invitations = yield* Invitations
    const roleIds = yield* Effect.forEach(roleNames, (name) => roleId(inviter, name))
    yield* invitations.create(inviter, { email: user.email, roleIds }, meta)
    const token = yield* mailedToken(user.email)
    yield* invitations.accept(user, token!, meta)
    return asMember(user, inviter.organizationId)
  }).pipe(Effect.orDie)

/** The organization's revision now. */
export const revisionOf = (organizationId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql`SELECT revision::text AS revision FROM organizations WHERE id = ${organizationId}`.pipe(
      Effect.map((rows) => String(rows[0]!.revision))
    )
  ).pipe(Effect.orDie)

/** The types of the organization's events after `revision`, in order. */
export const eventTypesSince = (organizationId: string, revision: string) =>
  Effect.flatMap(Outbox, (outbox) => outbox.eventsSince(organizationId, revision)).pipe(
    Effect.map((events) => events.map((event) => event.type))
  )

/** Whether `userId` may do `permission` in the organization, as the permission store answers now. */
export const can = (organizationId: string, userId: string, permission: string) =>
  Effect.flatMap(PermissionStore, (store) => store.check({ organizationId, userId, permission })).pipe(
    Effect.map((answer) => answer.allowed)
  )
