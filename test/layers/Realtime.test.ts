import { randomUUID } from "node:crypto"
import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Layer, Option, TestClock } from "effect"
import { RevocationsLive } from "../../src/layers/auth/RevocationsLive.ts"
import { SessionsLive } from "../../src/layers/auth/SessionsLive.ts"
import { layer as relayLayer } from "../../src/layers/events/OutboxRelay.ts"
import { RealtimeLive } from "../../src/layers/live/RealtimeLive.ts"
import { EventStreamMemory } from "../../src/layers/memory/EventStreamMemory.ts"
import { AccessTokens } from "../../src/services/AccessTokens.ts"
import { Realtime } from "../../src/services/Realtime.ts"
import { Revocations } from "../../src/services/Revocations.ts"
import { Sessions } from "../../src/services/Sessions.ts"
import { createOrganization, createUser, RbacTest, type TestUser } from "./RbacLayers.ts"

const AccessTokensTest = Layer.succeed(
  AccessTokens,
  AccessTokens.of({
    ttlSeconds: 900,
    jwks: { keys: [] },
    issue: () => Effect.die("unused"),
    verify: () => Effect.die("unused"),
    verifiedNow: () => undefined
  })
)

/** Realtime as Main.ts composes it, over the RBAC layers on a throwaway database, with the outbox relay. */
const RealtimeTest = RealtimeLive.pipe(
  Layer.provideMerge(relayLayer({ maxLength: 10_000, retention: Duration.days(1), pollInterval: Duration.seconds(1) })),
  Layer.provideMerge(RevocationsLive),
  Layer.provideMerge(SessionsLive),
  Layer.provideMerge(Layer.merge(EventStreamMemory, AccessTokensTest)),
  Layer.provideMerge(RbacTest)
)

/** Logout as SignIn does it: Postgres, then every node. */
const logout = (user: { readonly userId: string; readonly sessionId: string }) =>
  Effect.gen(function* () {
    expect(yield* Effect.flatMap(Sessions, (s) => s.revoke(user.userId, user.sessionId, "logout"))).toBe(true)
    yield* Effect.flatMap(Revocations, (r) => r.revoke([user.sessionId], "logout"))
  })

/** `user` signed in: a real session in the sessions table. */
const signedIn = (user: TestUser) =>
  Effect.gen(function* () {
    const started = yield* Effect.flatMap(Sessions, (s) => s.start(user.userId, { ip: "127.0.0.1", userAgent: null }))
    return { ...user, sessionId: Option.getOrThrow(started).sessionId }
  })

/** An owner signed in, with their organization. */
const owner = Effect.gen(function* () {
  const member = yield* createOrganization(yield* createUser("owner"))
  return { ...member, ...(yield* signedIn(member)) }
})

const ticketOf = (url: string) => new URL(url).searchParams.get("ticket")!

describe("Realtime tickets (layers on Postgres)", () => {
  it.layer(RealtimeTest, { timeout: "120 seconds" })((it) => {
    it.effect("a ticket opens one socket: it names the session and organization once, then nothing", () =>
      Effect.gen(function* () {
        const realtime = yield* Realtime
        const user = yield* owner
        const issued = yield* realtime.issueTicket(user, user.organizationId)
        expect(ticketOf(issued.url)).toBe(issued.ticket)
        expect(issued.expiresIn).toBe(30)
        const expiry = yield* Effect.flatMap(Sessions, (s) => s.absoluteExpiry(user.sessionId))
        expect(yield* realtime.redeem(issued.ticket)).toEqual(
          Option.some({
            userId: user.userId,
            sessionId: user.sessionId,
            organizationId: user.organizationId,
            sessionExpiresAt: Option.getOrThrow(expiry).getTime()
          })
        )
        expect(yield* realtime.redeem(issued.ticket)).toEqual(Option.none())
      })
    )

    it.effect("a ticket expires 30 seconds after it was issued", () =>
      Effect.gen(function* () {
        const realtime = yield* Realtime
        const user = yield* owner
        const early = yield* realtime.issueTicket(user, user.organizationId)
        const late = yield* realtime.issueTicket(user, user.organizationId)
        yield* TestClock.adjust(Duration.seconds(29))
        expect(Option.isSome(yield* realtime.redeem(early.ticket))).toBe(true)
        yield* TestClock.adjust(Duration.seconds(1))
        expect(yield* realtime.redeem(late.ticket)).toEqual(Option.none())
      })
    )

    it.effect(
      "no ticket for a session that has ended, nor outside the organization (404 either way); an ended session's ticket does not open",
      () =>
        Effect.gen(function* () {
          const realtime = yield* Realtime
          const user = yield* owner
          const stranger = yield* signedIn(yield* createUser("stranger"))
          const outside = yield* Effect.flip(realtime.issueTicket(stranger, user.organizationId))
          expect(outside).toMatchObject({ _tag: "NotFound" })
          const unknown = yield* Effect.flip(realtime.issueTicket(user, randomUUID()))
          expect(unknown).toEqual(outside)

          const issued = yield* realtime.issueTicket(user, user.organizationId)
          yield* logout(user)
          const ended = yield* Effect.flip(realtime.issueTicket(user, user.organizationId))
          expect(ended).toEqual(outside)
          // A ticket issued before the session ended ends with it.
          expect(yield* realtime.redeem(issued.ticket)).toEqual(Option.none())
        })
    )

    it.effect(
      "a session that had a ticket here gets the next from memory (a reconnect); memory answers nothing it cannot tell",
      () =>
        Effect.gen(function* () {
          const realtime = yield* Realtime
          const user = yield* owner
          const stranger = yield* signedIn(yield* createUser("stranger"))
          // Never issued on this node: the session's expiry is not known here yet.
          expect(realtime.issueTicketNow(user, user.organizationId)).toBeUndefined()
          const first = yield* realtime.issueTicket(user, user.organizationId)
          const again = realtime.issueTicketNow(user, user.organizationId)
          expect(again).toBeDefined()
          const issued = yield* again!
          expect(issued.ticket).not.toBe(first.ticket)
          const expiry = yield* Effect.flatMap(Sessions, (s) => s.absoluteExpiry(user.sessionId))
          expect(yield* realtime.redeem(issued.ticket)).toEqual(
            Option.some({
              userId: user.userId,
              sessionId: user.sessionId,
              organizationId: user.organizationId,
              sessionExpiresAt: Option.getOrThrow(expiry).getTime()
            })
          )
          // Not a member: memory says no, and `issueTicket` answers (404).
          yield* Effect.flip(realtime.issueTicket(stranger, user.organizationId))
          expect(realtime.issueTicketNow(stranger, user.organizationId)).toBeUndefined()
          expect(realtime.issueTicketNow(user, randomUUID())).toBeUndefined()
        })
    )

    it.effect("a malformed or unknown ticket redeems to nothing", () =>
      Effect.gen(function* () {
        const realtime = yield* Realtime
        expect(yield* realtime.redeem("not a ticket")).toEqual(Option.none())
        expect(yield* realtime.redeem("A".repeat(43))).toEqual(Option.none())
      })
    )
  })
})
