/**
 * The one composition root. Infra picks real Postgres/Redis or the embedded defaults from the
 * settings; Transport serves HTTP and WebSockets on top of it. `LoggingLive` (Logging.ts) is
 * provided around the whole program by main.ts, so every layer logs in the configured format.
 */
import { Effect, Layer, Option } from "effect"
import { LiveRouterLive } from "../actors/LiveRouter.ts"
import { SessionRegistry } from "../actors/SessionRegistry.ts"
import { AccessTokensLive } from "./AccessTokensLive.ts"
import { AdminLive } from "./AdminLive.ts"
import { AuditLogLive } from "./AuditLogLive.ts"
import { AuthLive } from "./AuthLive.ts"
import { DatabaseLive, MigrationsLive } from "./Database.ts"
import { EventStreamMemory } from "./EventStreamMemory.ts"
import { EventStreamRedis } from "./EventStreamRedis.ts"
import { ExpiryScheduler } from "./ExpiryScheduler.ts"
import { HttpServerLive } from "./HttpServer.ts"
import { KeysLive } from "./Keys.ts"
import { KeyValueStoreMemory } from "./KeyValueStoreMemory.ts"
import { KeyValueStoreRedis } from "./KeyValueStoreRedis.ts"
import { LiveSocketServerLive } from "./LiveSocketServer.ts"
import { MembersLive } from "./MembersLive.ts"
import { MailerLive } from "./MailerLive.ts"
import { OrganizationsLive } from "./OrganizationsLive.ts"
import { OutboxLive } from "./OutboxLive.ts"
import { OutboxRelay } from "./OutboxRelay.ts"
import { PasswordHasherLive } from "./PasswordHasherLive.ts"
import { PermissionStoreLive } from "./PermissionStoreLive.ts"
import { RateLimiterMemory } from "./RateLimiterMemory.ts"
import { RateLimiterRedis } from "./RateLimiterRedis.ts"
import { ReadinessLive } from "./ReadinessLive.ts"
import { RealtimeLive } from "./RealtimeLive.ts"
import * as RedisClient from "./RedisClient.ts"
import { RolesLive } from "./RolesLive.ts"
import { RevocationsLive } from "./RevocationsLive.ts"
import { Settings, validateAll } from "./Settings.ts"
import { loadUws } from "./Uws.ts"
import { WorkQueueMemory } from "./WorkQueueMemory.ts"
import { WorkQueueRedis } from "./WorkQueueRedis.ts"

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

/** Keys, tokens, hashing, revocation, audit, mail, the outbox, and the Auth and RBAC services. */
export const DomainLive = Layer.mergeAll(
  AuthLive,
  OrganizationsLive,
  RolesLive,
  MembersLive,
  AdminLive,
  RealtimeLive,
  OutboxRelay,
  ExpiryScheduler
).pipe(
  Layer.provideMerge(PermissionStoreLive),
  Layer.provideMerge(Layer.mergeAll(RevocationsLive, PasswordHasherLive, AuditLogLive, MailerLive, OutboxLive)),
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
