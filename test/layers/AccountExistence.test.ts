/**
 * Account-existence answers take the same time either way (S51): forgot-password and register
 * answer after the same work for a known and an unknown address, and what differs (the lookup, the
 * tokens, the mails, the audit entries) happens after the answer. Shown structurally: with every
 * mail and audit entry held back, both paths still answer, having made the same calls.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, FiberRef, Layer, Redacted, TestServices } from "effect"
import { AccountsLive } from "../../src/layers/auth/AccountsLive.ts"
import { ProfileCacheLive } from "../../src/layers/auth/ProfileCache.ts"
import { OutboxLive } from "../../src/layers/events/OutboxLive.ts"
import { EventStreamMemory } from "../../src/layers/memory/EventStreamMemory.ts"
import { KeyValueStoreMemory } from "../../src/layers/memory/KeyValueStoreMemory.ts"
import { RateLimiterMemory } from "../../src/layers/memory/RateLimiterMemory.ts"
import { Accounts } from "../../src/services/Accounts.ts"
import { AuditLog } from "../../src/services/AuditLog.ts"
import { Mailer } from "../../src/services/Mailer.ts"
import { PasswordHasher } from "../../src/services/PasswordHasher.ts"
import { Revocations } from "../../src/services/Revocations.ts"
import { Sessions } from "../../src/services/Sessions.ts"
import { DatabaseTest, meta } from "./RbacLayers.ts"

/** Set on the fiber that computes an answer (a worker forked at start does not inherit it). */
const Answering = FiberRef.unsafeMake(false)
/** Mails, audit entries and hashes: made while answering, and made after. */
const answering: Array<string> = []
const after: Array<string> = []
/** Held closed while a test looks at what was answered before any mail or audit entry. */
let gate = Effect.runSync(Deferred.make<void>())
const note = (name: string) =>
  Effect.flatMap(FiberRef.get(Answering), (inAnswer) => Effect.sync(() => (inAnswer ? answering : after).push(name)))
const held = (name: string) => Effect.zipRight(note(name), Deferred.await(gate))

const unused = new Proxy({}, { get: () => () => Effect.die("not used in this test") })

const Stubs = Layer.mergeAll(
  Layer.succeed(Mailer, Mailer.of({ send: ({ to, subject }) => held(`mail ${subject} to ${to}`) })),
  Layer.succeed(AuditLog, { record: ({ action }) => held(`audit ${action}`), list: () => Effect.die("unused") }),
  Layer.succeed(PasswordHasher, {
    hash: () => Effect.as(note("hash"), "hashed"),
    verify: () => Effect.succeed(false)
  }),
  Layer.succeed(Sessions, unused as never),
  Layer.succeed(Revocations, unused as never),
  KeyValueStoreMemory,
  RateLimiterMemory
)

const AccountsTest = AccountsLive.pipe(
  Layer.provideMerge(ProfileCacheLive.pipe(Layer.provide(Layer.mergeAll(OutboxLive, EventStreamMemory)))),
  Layer.provideMerge(Stubs),
  Layer.provideMerge(DatabaseTest)
)

/** What `answer` answered while mail and audit are held back, and the calls it made. */
const answeredWhileHeld = <A, E, R>(answer: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    answering.length = 0
    const result = yield* answer.pipe(Effect.locally(Answering, true), Effect.timeout("10 seconds"), Effect.either)
    return { result, calls: [...answering] }
  })

/** Waits (up to 10 s) for calls made after answering that start with `prefix`. */
const eventuallyAfter = (prefix: string) =>
  Effect.gen(function* () {
    for (let i = 0; i < 200; i++) {
      const found = after.filter((call) => call.startsWith(prefix))
      if (found.length > 0) return found
      yield* Effect.sleep("50 millis")
    }
    return []
  })

describe("Accounts: answers that do not tell who has an account (S51)", () => {
  it.layer(AccountsTest, { timeout: "120 seconds" })((it) => {
    it.effect("forgot-password answers alike for a known and an unknown address, before looking it up (S51)", () =>
      TestServices.provideLive(
        Effect.gen(function* () {
          const accounts = yield* Accounts
          const known = `known-${Date.now()}@example.com`
          const unknown = `nobody-${Date.now()}@example.com`
          gate = yield* Deferred.make<void>()
          const registered = yield* answeredWhileHeld(
            accounts.register({ email: known, password: Redacted.make("a fine passphrase"), name: "K" }, meta)
          )
          expect(registered.result._tag).toBe("Right")

          const forKnown = yield* answeredWhileHeld(accounts.forgotPassword(known, meta))
          const forUnknown = yield* answeredWhileHeld(accounts.forgotPassword(unknown, meta))
          // Both answered with mail and audit held back, the same answer after the same calls (none).
          expect(forKnown.result._tag).toBe("Right")
          expect(forKnown.result).toEqual(forUnknown.result)
          expect(forKnown.calls).toEqual([])
          expect(forUnknown.calls).toEqual([])

          // What differs happens afterwards: the known address is mailed, the unknown one is not.
          yield* Deferred.succeed(gate, undefined)
          expect(yield* eventuallyAfter("mail Reset your password")).toEqual([`mail Reset your password to ${known}`])
          expect(yield* eventuallyAfter("audit password.reset_requested")).toHaveLength(1)
        })
      )
    )

    it.effect("register answers alike for a new and a taken address, before any mail or audit entry (S51)", () =>
      TestServices.provideLive(
        Effect.gen(function* () {
          const accounts = yield* Accounts
          gate = yield* Deferred.make<void>()
          const email = `register-${Date.now()}@example.com`
          const input = { email, password: Redacted.make("a fine passphrase"), name: "R" }
          const fresh = yield* answeredWhileHeld(accounts.register(input, meta))
          const taken = yield* answeredWhileHeld(accounts.register({ ...input, email: email.toUpperCase() }, meta))
          expect(fresh.result._tag).toBe("Right")
          expect(fresh.result).toEqual(taken.result)
          expect(fresh.calls).toEqual(["hash"])
          expect(taken.calls).toEqual(["hash"])
          yield* Deferred.succeed(gate, undefined)
          expect(yield* eventuallyAfter(`mail Someone tried to register with your address to ${email}`)).toHaveLength(1)
        })
      )
    )
  })
})
