/**
 * Account-existence answers take the same time either way (S51), end to end on Postgres: with the
 * tables only an existing account's path writes to (one-time tokens, audit log) locked, both
 * answers still come at once, so neither waits for work the other does not do. Then medians of 30
 * alternating requests for a known and an unknown address on forgot-password, register and login,
 * printed, with a generous bound (a loaded machine must not fail it).
 */
import { Effect, Redacted } from "effect"
import pg from "pg"
import { describe, expect, it } from "vitest"
import { Accepted } from "../../src/rpc/Auth.ts"
import { ApiClient } from "../../src/rpc/client.ts"
import { STRONG_PASSWORD, uniqueEmail } from "../support/AuthClient.ts"
import { e2e } from "../support/E2e.ts"
import { waitForMail } from "../support/Mailbox.ts"

const { Client } = pg

const RUNS = 30

const median = (xs: ReadonlyArray<number>) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!

const time = async (f: () => Promise<unknown>) => {
  const started = performance.now()
  await f()
  return performance.now() - started
}

/** Alternates `known` and `unknown` RUNS times each; their medians in ms. */
const compare = async (known: (i: number) => Promise<unknown>, unknown: (i: number) => Promise<unknown>) => {
  const a: Array<number> = []
  const b: Array<number> = []
  for (let i = 0; i < RUNS; i++) {
    a.push(await time(() => known(i)))
    b.push(await time(() => unknown(i)))
  }
  return { known: median(a), unknown: median(b) }
}

/** Neither median is more than twice the other, give or take 5 ms of noise. */
const alike = ({ known, unknown }: { known: number; unknown: number }) =>
  known <= 2 * unknown + 5 && unknown <= 2 * known + 5

describe("account-existence answers take the same time either way (S51)", () => {
  const { api, server, signUp, database, node } = e2e()

  it("forgot-password and register answer while the tables only a known account's path writes are locked (S51)", async () => {
    const user = await signUp("locked-known")
    const lock = new Client({ connectionString: database.url })
    await lock.connect()
    try {
      await lock.query("BEGIN")
      await lock.query("LOCK TABLE one_time_tokens, audit_log IN ACCESS EXCLUSIVE MODE")
      // The status, or "no answer" when none came within 10 s.
      const within = (path: string, body: unknown) =>
        Promise.race([
          api.call("POST", path, { body }).then((reply) => reply.status),
          new Promise<string>((resolve) => setTimeout(() => resolve("no answer"), 10_000))
        ])
      const answers = await Promise.all([
        within("/v1/auth/password/forgot", { email: user.email }),
        within("/v1/auth/password/forgot", { email: uniqueEmail("locked-nobody") }),
        within("/v1/auth/register", { email: user.email, password: STRONG_PASSWORD, name: "T" }),
        within("/v1/auth/register", { email: uniqueEmail("locked-new"), password: STRONG_PASSWORD, name: "T" })
      ])
      expect(answers).toEqual([202, 202, 202, 202])
    } finally {
      await lock.query("ROLLBACK").catch(() => undefined)
      await lock.end()
    }
    // The known address is mailed once the tables are free again.
    await waitForMail(node.dataDir, (m) => m.to.includes(user.email) && m.subject === "Reset your password", 20_000)
  }, 60_000)

  it("forgot-password, register and login: medians for known and unknown addresses (S51)", async () => {
    const user = await signUp("timing-known")
    const forgot = await compare(
      () => api.call("POST", "/v1/auth/password/forgot", { body: { email: user.email } }),
      () => api.call("POST", "/v1/auth/password/forgot", { body: { email: uniqueEmail("timing-nobody") } })
    )
    const register = await compare(
      () => api.register(user.email, STRONG_PASSWORD),
      () => api.register(uniqueEmail("timing-new"), STRONG_PASSWORD)
    )
    // Wrong passwords for known accounts, 3 per account (the lock, after 5, answers faster by design).
    const accounts = Array.from({ length: Math.ceil(RUNS / 3) }, () => uniqueEmail("timing-wrong"))
    for (const email of accounts) expect((await api.register(email, STRONG_PASSWORD)).status).toBe(202)
    const login = await compare(
      (i) => api.login(accounts[Math.floor(i / 3)]!, `wrong password ${i}`),
      () => api.login(uniqueEmail("timing-ghost"), "wrong password")
    )
    const ms = (x: number) => `${x.toFixed(1)} ms`
    console.log(
      `S51 medians of ${RUNS} (known / unknown): forgot ${ms(forgot.known)} / ${ms(forgot.unknown)}, ` +
        `register ${ms(register.known)} / ${ms(register.unknown)}, login ${ms(login.known)} / ${ms(login.unknown)}`
    )
    expect(alike(forgot), `forgot ${JSON.stringify(forgot)}`).toBe(true)
    expect(alike(register), `register ${JSON.stringify(register)}`).toBe(true)
    expect(alike(login), `login ${JSON.stringify(login)}`).toBe(true)
  }, 180_000)

  it("the typed client gets the same answer for a known and an unknown address (S51)", async () => {
    const user = await signUp("timing-rpc")
    const answers = await Effect.gen(function* () {
      const client = yield* ApiClient
      return [
        yield* client.auth.forgotPassword({ email: user.email }),
        yield* client.auth.forgotPassword({ email: uniqueEmail("timing-rpc-nobody") }),
        yield* client.auth.register({ email: user.email, password: Redacted.make(STRONG_PASSWORD), name: "T" }),
        yield* client.auth.register({
          email: uniqueEmail("timing-rpc-new"),
          password: Redacted.make(STRONG_PASSWORD),
          name: "T"
        })
      ]
    }).pipe(Effect.provide(ApiClient.layer(`${server.url}/rpc`)), Effect.runPromise)
    expect(answers[0]).toEqual(answers[1])
    expect(answers[2]).toEqual(answers[3])
    expect(answers[0]).toBeInstanceOf(Accepted)
  })
})
