import { describe, expect, layer } from "@effect/vitest"
import { Effect, Option, Redacted } from "effect"
import { vi } from "vitest"
import { PasswordHasherLive } from "../../src/layers/auth/PasswordHasherLive.ts"
import { PasswordHasher } from "../../src/services/PasswordHasher.ts"

/**
 * Counts argon2 calls in flight at the library boundary. Timing cannot show the bound on a 2-core
 * machine: libuv's pool already runs at most 4 hashes at once and the cores are saturated with 2, so
 * "4 at a time" and "20 at once" take about as long. What the bound changes is how many hashes
 * are handed to argon2 (each holding ~19 MiB once it runs) before earlier ones finish, and that
 * can be counted exactly.
 */
const inFlight = vi.hoisted(() => ({ now: 0, max: 0 }))

vi.mock("@node-rs/argon2", async (importOriginal) => {
  const argon2 = await importOriginal<typeof import("@node-rs/argon2")>()
  const counted =
    <Args extends Array<unknown>, A>(f: (...args: Args) => Promise<A>) =>
    async (...args: Args) => {
      inFlight.now++
      inFlight.max = Math.max(inFlight.max, inFlight.now)
      try {
        return await f(...args)
      } finally {
        inFlight.now--
      }
    }
  return { ...argon2, hash: counted(argon2.hash), verify: counted(argon2.verify) }
})

const secret = (password: string) => Redacted.make(password)

const median = (values: Array<number>) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!

const timed = <A>(effect: Effect.Effect<A>) =>
  Effect.gen(function* () {
    const started = performance.now()
    yield* effect
    return performance.now() - started
  })

describe("PasswordHasher", () => {
  // Live services: the timing cases measure real time.
  layer(PasswordHasherLive, { excludeTestServices: true })((it) => {
    it.effect("stores an argon2id PHC string with m=19456, t=2, p=1 and a fresh salt", () =>
      Effect.gen(function* () {
        const hasher = yield* PasswordHasher
        const first = yield* hasher.hash(secret("correct horse battery staple"))
        const second = yield* hasher.hash(secret("correct horse battery staple"))
        expect(first).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/)
        expect(second).not.toBe(first)
      })
    )

    it.effect("verifies the right password and refuses a wrong one or a one-character change", () =>
      Effect.gen(function* () {
        const hasher = yield* PasswordHasher
        const stored = Option.some(yield* hasher.hash(secret("correct horse battery staple")))
        expect(yield* hasher.verify(stored, secret("correct horse battery staple"))).toBe(true)
        expect(yield* hasher.verify(stored, secret("something else entirely"))).toBe(false)
        expect(yield* hasher.verify(stored, secret("correct horse battery stapLe"))).toBe(false)
        expect(yield* hasher.verify(stored, secret("correct horse battery stapl"))).toBe(false)
      })
    )

    it.effect("compares passwords exactly as sent: no trimming, no Unicode normalisation", () =>
      Effect.gen(function* () {
        const hasher = yield* PasswordHasher
        const composed = "p\u00e4ssword"
        const stored = Option.some(yield* hasher.hash(secret(composed)))
        expect(yield* hasher.verify(stored, secret(composed))).toBe(true)
        expect(yield* hasher.verify(stored, secret(`${composed} `))).toBe(false)
        expect(yield* hasher.verify(stored, secret(` ${composed}`))).toBe(false)
        expect(yield* hasher.verify(stored, secret("pa\u0308ssword"))).toBe(false)
        const spaced = Option.some(yield* hasher.hash(secret(`${composed} `)))
        expect(yield* hasher.verify(spaced, secret(composed))).toBe(false)
      })
    )

    it.effect("a corrupt stored hash is refused, not a crash", () =>
      Effect.gen(function* () {
        const hasher = yield* PasswordHasher
        expect(yield* hasher.verify(Option.some("not a hash"), secret("anything"))).toBe(false)
      })
    )

    it.effect("verifying with no stored hash is refused and takes about as long as a real verify", () =>
      Effect.gen(function* () {
        const hasher = yield* PasswordHasher
        const stored = Option.some(yield* hasher.hash(secret("correct horse battery staple")))
        expect(yield* hasher.verify(Option.none(), secret("correct horse battery staple"))).toBe(false)
        // Interleaved runs and medians keep a busy neighbour from skewing one side; a shortcut
        // without the dummy verify would be ~100x faster, far outside the factor allowed here.
        const real: Array<number> = []
        const missing: Array<number> = []
        for (let i = 0; i < 5; i++) {
          real.push(yield* timed(hasher.verify(stored, secret("wrong password"))))
          missing.push(yield* timed(hasher.verify(Option.none(), secret("wrong password"))))
        }
        expect(median(missing)).toBeGreaterThan(median(real) / 4)
        expect(median(missing)).toBeLessThan(median(real) * 4)
      })
    )

    it.effect("never runs more than 4 hashes at once, even when 20 logins arrive together", () =>
      Effect.gen(function* () {
        const hasher = yield* PasswordHasher
        const stored = Option.some(yield* hasher.hash(secret("correct horse battery staple")))
        inFlight.max = 0
        const results = yield* Effect.all(
          Array.from({ length: 20 }, (_, i) =>
            i % 2 === 0
              ? hasher.hash(secret(`password number ${i}`))
              : hasher.verify(stored, secret("correct horse battery staple"))
          ),
          { concurrency: "unbounded" }
        )
        expect(results.filter((result) => result === true)).toHaveLength(10)
        expect(inFlight.max).toBeLessThanOrEqual(4)
        expect(inFlight.max).toBeGreaterThan(1)
      })
    )

    // The HTTP layer caps the body size; this is the hasher's own floor: no crash, no hang.
    it.effect("a 1 MB password is hashed and verified", () =>
      Effect.gen(function* () {
        const hasher = yield* PasswordHasher
        const huge = "x".repeat(1024 * 1024)
        const stored = Option.some(yield* hasher.hash(secret(huge)))
        expect(yield* hasher.verify(stored, secret(huge))).toBe(true)
        expect(yield* hasher.verify(stored, secret(`${huge}y`))).toBe(false)
      })
    )
  })
})
