/**
 * The one composition root. Infra picks real Postgres/Redis or the embedded defaults from the
 * settings; Transport serves HTTP and WebSockets on top of it. `LoggingLive` (Logging.ts) is
 * provided around the whole program by main.ts, so every layer logs in the configured format.
 */
import { Effect, Layer, Option } from "effect"
import { LiveRouterLive } from "../actors/LiveRouter.ts"
import { SessionRegistry } from "../actors/SessionRegistry.ts"
import { AuditLogLive } from "./AuditLogLive.ts"
import { AccessTokensLive } from "./auth/AccessTokensLive.ts"
import { AccountsLive } from "./auth/AccountsLive.ts"
import { KeysLive } from "./auth/Keys.ts"
import { MfaLive } from "./auth/MfaLive.ts"
import { PasswordHasherLive } from "./auth/PasswordHasherLive.ts"
import { ProfileCacheLive } from "./auth/ProfileCache.ts"
import { RevocationsLive } from "./auth/RevocationsLive.ts"
import { SessionsLive } from "./auth/SessionsLive.ts"
import { SignInLive } from "./auth/SignInLive.ts"
import { DatabaseLive, MigrationsLive } from "./Database.ts"
import { OutboxLive } from "./events/OutboxLive.ts"
import { OutboxRelay } from "./events/OutboxRelay.ts"
import { HttpServerLive } from "./http/HttpServer.ts"
import { LiveSocketServerLive } from "./live/LiveSocketServer.ts"
import { RealtimeLive } from "./live/RealtimeLive.ts"
import { loadUws } from "./live/Uws.ts"
import { MailerLive } from "./mail/MailerLive.ts"
import { EventStreamMemory } from "./memory/EventStreamMemory.ts"
import { KeyValueStoreMemory } from "./memory/KeyValueStoreMemory.ts"
import { RateLimiterMemory } from "./memory/RateLimiterMemory.ts"
import { WorkQueueMemory } from "./memory/WorkQueueMemory.ts"
import { ReadinessLive } from "./ReadinessLive.ts"
import { AdminLive } from "./rbac/AdminLive.ts"
import { ExpiryScheduler } from "./rbac/ExpiryScheduler.ts"
import { InvitationsLive } from "./rbac/InvitationsLive.ts"
import { MembersLive } from "./rbac/MembersLive.ts"
import { OrganizationsLive } from "./rbac/OrganizationsLive.ts"
import { PermissionStoreLive } from "./rbac/PermissionStoreLive.ts"
import { RolesLive } from "./rbac/RolesLive.ts"
import { EventStreamRedis } from "./redis/EventStreamRedis.ts"
import { KeyValueStoreRedis } from "./redis/KeyValueStoreRedis.ts"
import { RateLimiterRedis } from "./redis/RateLimiterRedis.ts"
import * as RedisClient from "./redis/RedisClient.ts"
import { WorkQueueRedis } from "./redis/WorkQueueRedis.ts"
import { Settings, validateAll } from "./Settings.ts"

/** Event stream, key-value store, rate limiter and work queue: Redis when REDIS_URL is set, in-process otherwise. */
export const EphemeralLive = Layer.unwrapEffect(
  Effect.gen(function* () {
    const url = yield* Settings.redisUrl
    const database = Option.isSome(yield* Settings.databaseUrl) ? "postgres" : "embedded PGlite"
    if (Option.isNone(url)) {
      yield* Effect.logInfo(
        `mode: ${database} + in-process events, key-value store and rate limits (single node only; set REDIS_URL to scale out)`
      )
      return Layer.mergeAll(EventStreamMemory, KeyValueStoreMemory, RateLimiterMemory, WorkQueueMemory)
    }
    yield* Effect.logInfo(`mode: ${database} + redis (multi-node)`)
    return Layer.mergeAll(EventStreamRedis, KeyValueStoreRedis, RateLimiterRedis, WorkQueueRedis).pipe(
      Layer.provide(RedisClient.layer(url.value))
    )
  })
)

export const InfraLive = Layer.mergeAll(EphemeralLive, MigrationsLive.pipe(Layer.provideMerge(DatabaseLive)))

/** Keys, tokens, hashing, sessions and revocation, audit, mail, the outbox, and the auth and RBAC services. */
export const DomainLive = Layer.mergeAll(
  OrganizationsLive,
  RolesLive,
  MembersLive,
  InvitationsLive,
  AdminLive,
  RealtimeLive,
  OutboxRelay,
  ExpiryScheduler
).pipe(
  Layer.provideMerge(Layer.mergeAll(AccountsLive, SignInLive, MfaLive)),
  Layer.provideMerge(ProfileCacheLive),
  Layer.provideMerge(PermissionStoreLive),
  Layer.provideMerge(RevocationsLive),
  Layer.provideMerge(SessionsLive),
  Layer.provideMerge(Layer.mergeAll(PasswordHasherLive, AuditLogLive, MailerLive, OutboxLive)),
  Layer.provideMerge(AccessTokensLive),
  Layer.provideMerge(KeysLive)
)

/** Live sessions: the sockets and this node's event router, sharing one session registry. */
export const LiveLive = Layer.mergeAll(LiveSocketServerLive, LiveRouterLive).pipe(Layer.provide(SessionRegistry.layer))

export const TransportLive = Layer.mergeAll(HttpServerLive, LiveLive)

/** A bad setting or a missing native binary stops the server before anything is opened. */
const Preflight = Layer.effectDiscard(Effect.zipRight(validateAll, loadUws))

export const MainLive = TransportLive.pipe(
  Layer.provide(Layer.merge(ReadinessLive, DomainLive)),
  Layer.provide(InfraLive),
  Layer.provide(Preflight)
)
