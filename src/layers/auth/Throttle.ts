/**
 * Throttling the guessing of secrets: per IP on each sign-in-related action, per account on
 * passwords at login (lockout), and per account on codes and passwords once signed in.
 */
import { Clock, Duration, Effect, Option } from "effect"
import { TooManyRequests } from "../../rpc/Errors.ts"
import type { RequestMeta } from "../../services/AuditLog.ts"
import { KeyValueStore } from "../../services/KeyValueStore.ts"
import { type RateLimit, RateLimiter } from "../../services/RateLimiter.ts"
import { Settings } from "../Settings.ts"

const LOCK_AFTER_FAILURES = 5
const MAX_LOCK_MINUTES = 15
/** Wrong second factors or passwords per account before it must wait (only failures count). */
const GUESSES = { limit: 5, window: Duration.minutes(15) }

const seconds = (d: Duration.Duration) => Math.max(1, Math.ceil(Duration.toSeconds(d)))
const tooMany = (retryAfter: Duration.Duration) =>
  new TooManyRequests({ message: "Too many attempts; try again later", retryAfter: seconds(retryAfter) })

/** What is guessed on a signed-in account: a second factor, or the password. */
export type GuessKind = "mfa" | "password"

export const makeThrottle = Effect.gen(function* () {
  const kv = yield* KeyValueStore
  const limiter = yield* RateLimiter
  const ipLimit: RateLimit = { limit: yield* Settings.authIpRateLimit, window: "1 minute" }

  /** Per IP and action. Fails open (logged): an unreachable limiter must not lock everyone out. */
  const limitIp = (action: string, meta: RequestMeta) =>
    limiter.consume(`ip:${action}:${meta.ip}`, ipLimit).pipe(
      Effect.catchAll((error) =>
        Effect.as(Effect.logWarning("auth: rate limiter unavailable", error), {
          allowed: true,
          retryAfter: Duration.zero
        })
      ),
      Effect.flatMap((decision) => (decision.allowed ? Effect.void : Effect.fail(tooMany(decision.retryAfter))))
    )

  // Per account at login: after 5 consecutive failures, locked for 1, 2, 4 … 15 minutes, whatever the IP.
  const lockKey = (email: string) => `login-lock:${email}`
  const failuresKey = (email: string) => `login-failures:${email}`

  const checkLock = (email: string) =>
    Effect.gen(function* () {
      const until = yield* kv.get(lockKey(email)).pipe(Effect.orElseSucceed(() => Option.none<string>()))
      const now = yield* Clock.currentTimeMillis
      if (Option.isSome(until) && Number(until.value) > now) {
        return yield* tooMany(Duration.millis(Number(until.value) - now))
      }
    })

  const recordFailure = (email: string) =>
    Effect.gen(function* () {
      const failures = yield* kv.increment(failuresKey(email), Duration.days(1))
      if (failures < LOCK_AFTER_FAILURES) return
      const minutes = Math.min(2 ** (failures - LOCK_AFTER_FAILURES), MAX_LOCK_MINUTES)
      const now = yield* Clock.currentTimeMillis
      yield* kv.set(lockKey(email), String(now + minutes * 60_000), Duration.minutes(minutes))
    }).pipe(Effect.catchAll((error) => Effect.logWarning("auth: cannot record a login failure", error)))

  const clearFailures = (email: string) => kv.delete(failuresKey(email)).pipe(Effect.ignore)

  // Attempts on one account run one at a time on this node, so concurrent ones (many messages of one
  // POST /rpc, parallel requests) each see the failures before them: a lock stops the rest unverified.
  const serial = new Map<string, { readonly semaphore: Effect.Semaphore; users: number }>()
  const oneAtATime =
    (email: string) =>
    <A, E, R>(attempt: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      Effect.suspend(() => {
        let entry = serial.get(email)
        if (entry === undefined) {
          entry = { semaphore: Effect.unsafeMakeSemaphore(1), users: 0 }
          serial.set(email, entry)
        }
        const held = entry
        held.users += 1
        return held.semaphore
          .withPermits(1)(attempt)
          .pipe(
            Effect.ensuring(
              Effect.sync(() => {
                held.users -= 1
                if (held.users === 0) serial.delete(email)
              })
            )
          )
      })

  // Codes and passwords on a signed-in account: only wrong answers count, and a right one clears them.
  const guessesKey = (kind: GuessKind, userId: string) => `guesses:${kind}:${userId}`

  const checkGuesses = (kind: GuessKind, userId: string) =>
    kv.get(guessesKey(kind, userId)).pipe(
      Effect.orElseSucceed(() => Option.none<string>()),
      Effect.flatMap((count) =>
        Option.isSome(count) && Number(count.value) >= GUESSES.limit
          ? Effect.fail(tooMany(GUESSES.window))
          : Effect.void
      )
    )
  const wrongGuess = (kind: GuessKind, userId: string) =>
    kv.increment(guessesKey(kind, userId), GUESSES.window).pipe(Effect.ignore)
  const rightGuess = (kind: GuessKind, userId: string) => kv.delete(guessesKey(kind, userId)).pipe(Effect.ignore)

  return { limitIp, checkLock, recordFailure, clearFailures, oneAtATime, checkGuesses, wrongGuess, rightGuess }
})

export type Throttle = Effect.Effect.Success<typeof makeThrottle>
