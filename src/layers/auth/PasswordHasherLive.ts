import { hash, verify } from "@node-rs/argon2"
import { Effect, Layer, Option, Redacted } from "effect"
import { PasswordHasher } from "../../services/PasswordHasher.ts"

/** OWASP's argon2id minimum, set explicitly (2 = Argon2id; the const enum cannot be imported). */
export const argon2Options = { algorithm: 2, memoryCost: 19456, timeCost: 2, parallelism: 1 } as const

/**
 * Hashes run on libuv's thread pool (4 threads by default); at most that many run at once, the
 * rest wait their turn, so a login flood queues instead of starving other work of memory and CPU.
 */
const IN_FLIGHT = 4

export const make = Effect.gen(function* () {
  const permits = yield* Effect.makeSemaphore(IN_FLIGHT)
  const dummy = yield* Effect.promise(() => hash("not a real password", argon2Options))
  const bounded = <A>(f: () => Promise<A>) => permits.withPermits(1)(Effect.promise(f))

  return PasswordHasher.of({
    hash: (password) => bounded(() => hash(Redacted.value(password), argon2Options)),
    verify: (stored, password) =>
      bounded(() =>
        verify(
          Option.getOrElse(stored, () => dummy),
          Redacted.value(password)
        ).catch(() => false)
      ).pipe(Effect.map((ok) => ok && Option.isSome(stored)))
  })
})

export const PasswordHasherLive = Layer.effect(PasswordHasher, make)
